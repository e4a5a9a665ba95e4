//! bot-bottle-docker
