//! Pure values: what a set is made of, computed before any AWS call.

pub mod architecture;
pub mod dashboard;
pub mod function;
pub mod names;
pub mod regions;
pub mod rotation;
pub mod schedule;
#[cfg(test)]
mod template_constraints;
pub mod templates;
pub mod topology;
