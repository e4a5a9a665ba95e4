//! bot-bottle-egress
