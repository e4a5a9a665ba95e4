//! # bot-bottle-sdk
//!
//! The stable SDK for [bot-bottle](https://example.invalid/bot-bottle)
//! plugins: backends that run a bottle on some engine, and agent providers
//! that describe an agent.
//!
//! A plugin is a `cdylib` that implements [`Plugin`] and exports it with
//! [`export_plugin!`]. The macro generates the [abi_stable] glue; plugin code
//! uses ordinary Rust types and returns [`PluginError`]s. Panics in plugin
//! code are caught at the boundary and reported as
//! [`ErrorKind::Panicked`].
//!
//! ```no_run
//! use bot_bottle_sdk::prelude::*;
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn manifest() -> PluginManifest {
//!         PluginManifest {
//!             name: "hello".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             description: "says hello".into(),
//!             ..Default::default()
//!         }
//!     }
//! }
//!
//! bot_bottle_sdk::export_plugin!(Hello);
//! ```
//!
//! ## Trust
//!
//! Credential resolution stays in the host. A backend receives the *resolved*
//! egress environment in [`LaunchRequest::egress_env`] and hands it to the
//! egress proxy only. Values travel as [`Secret`], whose `Debug` and
//! `Display` never print them.
//!
//! ## Versioning
//!
//! A host built with SDK `1.x` loads plugins built with any SDK `1.y`,
//! `y <= x`. Minor releases only append: functions at the end of the
//! root module and vtables (prefix types), fields with serde defaults in the
//! documents, trait methods with default bodies. See `sdk/README.md`.

#![warn(missing_docs)]

pub mod backend;
mod bytes;
pub mod egress;
pub mod error;
pub mod ffi;
#[cfg(feature = "host")]
pub mod host;
pub mod log;
pub mod plugin;
pub mod provider;
pub mod secret;

pub use backend::{
    Backend, BackendInfo, BottleIdentity, BottleState, BottleSummary, DoctorCheck, DoctorReport,
    GcReport, GcRequest, ImageSpec, LaunchRequest, LogsRequest, Mount,
};
pub use egress::{
    AuthScheme, DeclaredAuth, EgressPlan, EgressPolicy, EgressRoute, HeaderMatch, HeaderMatchType,
    PathMatch, PathMatchType, RouteMatch, RouteOrigin, RouteSpec, SlotAuth,
};
pub use error::{ErrorKind, PluginError, PluginResult};
pub use plugin::{Plugin, PluginManifest};
pub use provider::{
    AgentProvider, AgentProvisionPlan, ProviderInfo, ProviderOptions, ProvisionRequest,
    ProvisionedFile,
};
pub use secret::{Secret, SecretMap};

/// The version of this SDK, recorded in every plugin built with it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a plugin author usually needs.
pub mod prelude {
    pub use crate::backend::*;
    pub use crate::egress::*;
    pub use crate::error::{ErrorKind, PluginError, PluginResult};
    pub use crate::plugin::{Plugin, PluginManifest};
    pub use crate::provider::*;
    pub use crate::secret::{Secret, SecretMap};
}

#[doc(hidden)]
pub mod __private {
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
}

/// Exports a [`Plugin`] implementation as this library's root module.
///
/// Use it once, in the `cdylib` crate's `lib.rs`:
///
/// ```ignore
/// bot_bottle_sdk::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader = {
            extern "C" fn __bot_bottle_root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(
                    $crate::ffi::ModuleFor::<$plugin>::module,
                )
            }
            // SAFETY: the constructor returns the `PluginMod_Ref` named here.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::ffi::PluginMod_Ref>(
                    __bot_bottle_root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
