//! bot-bottle-smolmachines
