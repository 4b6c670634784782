//! Flow stage: the bounded connection table. (In progress.)
