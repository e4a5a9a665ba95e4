//! bot-bottle-manifest
