//! The ecs model (not written yet).
