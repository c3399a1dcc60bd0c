//! elbv2 calls (filled in by the traits work).
