//! ecs calls (filled in by the traits work).
