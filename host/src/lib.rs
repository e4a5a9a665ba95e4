//! bot-bottle
