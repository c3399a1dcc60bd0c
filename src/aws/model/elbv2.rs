//! The elbv2 model (not written yet).
