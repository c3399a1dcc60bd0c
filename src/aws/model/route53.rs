//! The route53 model (not written yet).
