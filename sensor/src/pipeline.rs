//! Wiring of the stages for `replay` and `run`. (In progress.)
