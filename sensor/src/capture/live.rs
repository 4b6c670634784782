//! Live capture through libpcap. (Filled in with `run`.)
