//! std adapter for jobstate (grows in its own module set).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
