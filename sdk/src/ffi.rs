//! The C ABI between the host and a plugin library.
//!
//! Plugin authors never use this module directly: [`export_plugin!`](crate::export_plugin)
//! generates the plugin side and the host uses the `host` module (feature
//! `host`). It is public so that the macro can name it and so the layout is
//! documented in one place.
//!
//! # Design
//!
//! * The root module and every vtable are abi_stable *prefix types*: a later
//!   SDK minor release appends functions after the `last_prefix_field`, and a
//!   host reading an older plugin sees `None` for them.
//! * Requests and replies cross as JSON documents in `RString`s. Their fields
//!   are appended with `#[serde(default)]`, so old and new sides read each
//!   other's documents. Credentials never enter a document: they cross as
//!   [`FfiSecret`] slices borrowed for the duration of the call, or as
//!   [`FfiOwnedSecret`]s, which are zeroed on drop.
//! * Every function catches panics on the plugin side, because unwinding
//!   out of an `extern "C"` function aborts the process.

#![allow(non_camel_case_types)]

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::library::RootModule;
use abi_stable::marker_type::ErasedObject;
use abi_stable::prefix_type::WithMetadata;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, staticref, StableAbi};
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroize;

use crate::backend::{Backend, GcRequest, LaunchRequest, LogsRequest};
use crate::error::{ErrorKind, PluginError, PluginResult};
use crate::log::{self, Level};
use crate::plugin::Plugin;
use crate::provider::{AgentProvider, ProvisionRequest};
use crate::secret::{Secret, SecretMap};

/// An error crossing the boundary.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiError {
    /// [`ErrorKind`] code.
    pub kind: u32,
    /// Message, never a secret.
    pub message: RString,
    /// Optional hint.
    pub hint: ROption<RString>,
}

impl From<PluginError> for FfiError {
    fn from(e: PluginError) -> Self {
        FfiError {
            kind: e.kind.code(),
            message: e.message.into(),
            hint: e.hint.map(RString::from).into(),
        }
    }
}

impl From<FfiError> for PluginError {
    fn from(e: FfiError) -> Self {
        PluginError {
            kind: ErrorKind::from_code(e.kind),
            message: e.message.into_string(),
            hint: e.hint.into_option().map(RString::into_string),
        }
    }
}

/// A secret borrowed for the duration of one call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiSecret<'a> {
    /// Variable name.
    pub name: RStr<'a>,
    /// Value.
    pub value: RStr<'a>,
}

/// A secret handed over by value; zeroed when dropped.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiOwnedSecret {
    /// Variable name.
    pub name: RString,
    /// Value bytes (UTF-8).
    pub value: RVec<u8>,
}

impl Drop for FfiOwnedSecret {
    fn drop(&mut self) {
        self.value.as_mut_slice().zeroize();
    }
}

/// The host's log function.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct LogFn {
    /// Called with a [`Level`] as `u8` and the message.
    pub log: extern "C" fn(level: u8, message: RStr<'_>),
}

/// A byte sink the host lends to the plugin for one call.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiWriter<'a> {
    ctx: *mut ErasedObject,
    write: unsafe extern "C" fn(*mut ErasedObject, RSlice<'_, u8>) -> bool,
    _lifetime: PhantomData<&'a mut ()>,
}

/// A backend object owned by the host, implemented by the plugin.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiBackend {
    this: *mut ErasedObject,
    vtable: BackendVTable_Ref,
}

/// A provider object owned by the host, implemented by the plugin.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiProvider {
    this: *mut ErasedObject,
    vtable: ProviderVTable_Ref,
}

/// The reply of a provider's `provision`.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiProvisionReply {
    /// The plan as JSON (without `provisioned_env`).
    pub plan: RString,
    /// `provisioned_env`.
    pub secrets: RVec<FfiOwnedSecret>,
}

type Json = RResult<RString, FfiError>;

/// Backend functions. Append new ones at the end only.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = BackendVTable_Ref)))]
#[sabi(missing_field(option))]
pub struct BackendVTable {
    /// Frees the object.
    pub drop: unsafe extern "C" fn(*mut ErasedObject),
    /// `Backend::info` → `BackendInfo` JSON.
    pub info: unsafe extern "C" fn(*const ErasedObject) -> Json,
    /// `Backend::doctor` → `DoctorReport` JSON.
    pub doctor: unsafe extern "C" fn(*const ErasedObject) -> Json,
    /// `Backend::launch(LaunchRequest JSON, egress env)` → `BottleSummary` JSON.
    pub launch:
        unsafe extern "C" fn(*const ErasedObject, RStr<'_>, RSlice<'_, FfiSecret<'_>>) -> Json,
    /// `Backend::attach(id, tty)` → exit code.
    pub attach: unsafe extern "C" fn(*const ErasedObject, RStr<'_>, bool) -> RResult<i32, FfiError>,
    /// `Backend::wait(id)` → exit code.
    pub wait: unsafe extern "C" fn(*const ErasedObject, RStr<'_>) -> RResult<i32, FfiError>,
    /// `Backend::stop(id)`.
    pub stop: unsafe extern "C" fn(*const ErasedObject, RStr<'_>) -> RResult<(), FfiError>,
    /// `Backend::remove(id)`.
    pub remove: unsafe extern "C" fn(*const ErasedObject, RStr<'_>) -> RResult<(), FfiError>,
    /// `Backend::list` → `Vec<BottleSummary>` JSON.
    pub list: unsafe extern "C" fn(*const ErasedObject) -> Json,
    /// `Backend::logs(id, LogsRequest JSON, writer)`.
    pub logs: unsafe extern "C" fn(
        *const ErasedObject,
        RStr<'_>,
        RStr<'_>,
        FfiWriter<'_>,
    ) -> RResult<(), FfiError>,
    /// `Backend::gc(GcRequest JSON)` → `GcReport` JSON.
    #[sabi(last_prefix_field)]
    pub gc: unsafe extern "C" fn(*const ErasedObject, RStr<'_>) -> Json,
    // bot-bottle-sdk 1.0.0 ends here; later minor releases append below.
}

/// Agent provider functions. Append new ones at the end only.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ProviderVTable_Ref)))]
#[sabi(missing_field(option))]
pub struct ProviderVTable {
    /// Frees the object.
    pub drop: unsafe extern "C" fn(*mut ErasedObject),
    /// `AgentProvider::info` → `ProviderInfo` JSON.
    pub info: unsafe extern "C" fn(*const ErasedObject) -> Json,
    /// `AgentProvider::provision(ProvisionRequest JSON)`.
    #[sabi(last_prefix_field)]
    pub provision:
        unsafe extern "C" fn(*const ErasedObject, RStr<'_>) -> RResult<FfiProvisionReply, FfiError>,
    // bot-bottle-sdk 1.0.0 ends here; later minor releases append below.
}

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
#[sabi(missing_field(option))]
pub struct PluginMod {
    /// `PluginManifest` JSON, with `sdk_version` filled in.
    pub manifest: extern "C" fn() -> Json,
    /// Installs the host's log sink.
    pub set_log_sink: extern "C" fn(LogFn),
    /// Opens a backend by name.
    pub open_backend: extern "C" fn(RStr<'_>) -> RResult<FfiBackend, FfiError>,
    /// Opens an agent provider by name.
    #[sabi(last_prefix_field)]
    pub open_provider: extern "C" fn(RStr<'_>) -> RResult<FfiProvider, FfiError>,
    // bot-bottle-sdk 1.0.0 ends here; later minor releases append below.
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "bot_bottle_plugin";
    const NAME: &'static str = "bot_bottle_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The symbol under which abi_stable looks for a library's root module. The
/// SDK exports it itself so that plugins need no direct abi_stable
/// dependency; a unit test keeps it equal to abi_stable's own name.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

// ---------------------------------------------------------------------------
// Plugin side
// ---------------------------------------------------------------------------

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// Runs plugin code, turning both errors and panics into [`FfiError`].
fn guard<T>(what: &str, f: impl FnOnce() -> PluginResult<T>) -> RResult<T, FfiError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => RResult::RErr(
            PluginError::new(
                ErrorKind::Panicked,
                format!(
                    "plugin panicked in `{what}`: {}",
                    panic_message(payload.as_ref())
                ),
            )
            .into(),
        ),
    }
}

fn to_json<T: Serialize>(value: &T) -> PluginResult<RString> {
    serde_json::to_string(value)
        .map(RString::from)
        .map_err(|e| PluginError::internal(format!("encoding a reply: {e}")))
}

fn from_json<T: DeserializeOwned>(what: &str, text: RStr<'_>) -> PluginResult<T> {
    serde_json::from_str(text.as_str())
        .map_err(|e| PluginError::invalid_config(format!("decoding the {what} document: {e}")))
}

fn secrets_from_ffi(secrets: RSlice<'_, FfiSecret<'_>>) -> SecretMap {
    secrets
        .iter()
        .map(|s| (s.name.to_string(), Secret::new(s.value.as_str())))
        .collect()
}

type DynBackend = Box<dyn Backend>;
type DynProvider = Box<dyn AgentProvider>;

unsafe fn backend<'a>(this: *const ErasedObject) -> &'a dyn Backend {
    // SAFETY: `this` was created by `FfiBackend::new` from a `Box<DynBackend>`
    // and stays alive until `drop_backend`.
    unsafe { &**(this as *const DynBackend) }
}

unsafe extern "C" fn drop_backend(this: *mut ErasedObject) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `backend`; the host calls drop exactly once.
        drop(unsafe { Box::from_raw(this as *mut DynBackend) });
    }));
}

unsafe extern "C" fn backend_info(this: *const ErasedObject) -> Json {
    guard("info", || to_json(&unsafe { backend(this) }.info()))
}

unsafe extern "C" fn backend_doctor(this: *const ErasedObject) -> Json {
    guard("doctor", || to_json(&unsafe { backend(this) }.doctor()?))
}

unsafe extern "C" fn backend_launch(
    this: *const ErasedObject,
    request: RStr<'_>,
    secrets: RSlice<'_, FfiSecret<'_>>,
) -> Json {
    guard("launch", || {
        let mut request: LaunchRequest = from_json("launch request", request)?;
        request.egress_env = secrets_from_ffi(secrets);
        to_json(&unsafe { backend(this) }.launch(request)?)
    })
}

unsafe extern "C" fn backend_attach(
    this: *const ErasedObject,
    id: RStr<'_>,
    tty: bool,
) -> RResult<i32, FfiError> {
    guard("attach", || {
        unsafe { backend(this) }.attach(id.as_str(), tty)
    })
}

unsafe extern "C" fn backend_wait(
    this: *const ErasedObject,
    id: RStr<'_>,
) -> RResult<i32, FfiError> {
    guard("wait", || unsafe { backend(this) }.wait(id.as_str()))
}

unsafe extern "C" fn backend_stop(
    this: *const ErasedObject,
    id: RStr<'_>,
) -> RResult<(), FfiError> {
    guard("stop", || unsafe { backend(this) }.stop(id.as_str()))
}

unsafe extern "C" fn backend_remove(
    this: *const ErasedObject,
    id: RStr<'_>,
) -> RResult<(), FfiError> {
    guard("remove", || unsafe { backend(this) }.remove(id.as_str()))
}

unsafe extern "C" fn backend_list(this: *const ErasedObject) -> Json {
    guard("list", || to_json(&unsafe { backend(this) }.list()?))
}

struct WriterAdapter<'a, 'b>(&'a FfiWriter<'b>);

impl std::io::Write for WriterAdapter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: the host keeps `ctx` alive for the whole `logs` call.
        if unsafe { (self.0.write)(self.0.ctx, RSlice::from_slice(buf)) } {
            Ok(buf.len())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the host closed the output",
            ))
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

unsafe extern "C" fn backend_logs(
    this: *const ErasedObject,
    id: RStr<'_>,
    request: RStr<'_>,
    out: FfiWriter<'_>,
) -> RResult<(), FfiError> {
    guard("logs", || {
        let request: LogsRequest = from_json("logs request", request)?;
        let mut writer = WriterAdapter(&out);
        unsafe { backend(this) }.logs(id.as_str(), &request, &mut writer)
    })
}

unsafe extern "C" fn backend_gc(this: *const ErasedObject, request: RStr<'_>) -> Json {
    guard("gc", || {
        let request: GcRequest = from_json("gc request", request)?;
        to_json(&unsafe { backend(this) }.gc(&request)?)
    })
}

impl BackendVTable {
    staticref! {
        const WM: WithMetadata<BackendVTable> = WithMetadata::new(BackendVTable {
            drop: drop_backend,
            info: backend_info,
            doctor: backend_doctor,
            launch: backend_launch,
            attach: backend_attach,
            wait: backend_wait,
            stop: backend_stop,
            remove: backend_remove,
            list: backend_list,
            logs: backend_logs,
            gc: backend_gc,
        })
    }
    const REF: BackendVTable_Ref = BackendVTable_Ref(Self::WM.as_prefix());
}

impl FfiBackend {
    fn new(backend: DynBackend) -> Self {
        FfiBackend {
            this: Box::into_raw(Box::new(backend)) as *mut ErasedObject,
            vtable: BackendVTable::REF,
        }
    }
}

unsafe fn provider<'a>(this: *const ErasedObject) -> &'a dyn AgentProvider {
    // SAFETY: created by `FfiProvider::new` from a `Box<DynProvider>`.
    unsafe { &**(this as *const DynProvider) }
}

unsafe extern "C" fn drop_provider(this: *mut ErasedObject) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `provider`; the host calls drop exactly once.
        drop(unsafe { Box::from_raw(this as *mut DynProvider) });
    }));
}

unsafe extern "C" fn provider_info(this: *const ErasedObject) -> Json {
    guard("info", || to_json(&unsafe { provider(this) }.info()))
}

unsafe extern "C" fn provider_provision(
    this: *const ErasedObject,
    request: RStr<'_>,
) -> RResult<FfiProvisionReply, FfiError> {
    guard("provision", || {
        let request: ProvisionRequest = from_json("provision request", request)?;
        let plan = unsafe { provider(this) }.provision(&request)?;
        let secrets = plan
            .provisioned_env
            .iter()
            .map(|(name, value)| FfiOwnedSecret {
                name: name.into(),
                value: value.expose().as_bytes().to_vec().into(),
            })
            .collect();
        Ok(FfiProvisionReply {
            plan: to_json(&plan)?,
            secrets,
        })
    })
}

impl ProviderVTable {
    staticref! {
        const WM: WithMetadata<ProviderVTable> = WithMetadata::new(ProviderVTable {
            drop: drop_provider,
            info: provider_info,
            provision: provider_provision,
        })
    }
    const REF: ProviderVTable_Ref = ProviderVTable_Ref(Self::WM.as_prefix());
}

impl FfiProvider {
    fn new(provider: DynProvider) -> Self {
        FfiProvider {
            this: Box::into_raw(Box::new(provider)) as *mut ErasedObject,
            vtable: ProviderVTable::REF,
        }
    }
}

extern "C" fn manifest<P: Plugin>() -> Json {
    guard("manifest", || {
        let mut manifest = P::manifest();
        manifest.sdk_version = crate::SDK_VERSION.to_string();
        to_json(&manifest)
    })
}

extern "C" fn set_log_sink(sink: LogFn) {
    let _ = catch_unwind(|| {
        log::install(Box::new(move |level: Level, message: &str| {
            (sink.log)(level as u8, RStr::from_str(message))
        }));
        // The plugin has its own copy of std, so its own panic hook: without
        // this, every caught panic would also print a backtrace on the
        // user's terminal. The host reports the panic as an error anyway.
        std::panic::set_hook(Box::new(|info| {
            log::debug(&format!("plugin panic: {info}"));
        }));
    });
}

extern "C" fn open_backend<P: Plugin>(name: RStr<'_>) -> RResult<FfiBackend, FfiError> {
    guard("open_backend", || {
        P::open_backend(name.as_str()).map(FfiBackend::new)
    })
}

extern "C" fn open_provider<P: Plugin>(name: RStr<'_>) -> RResult<FfiProvider, FfiError> {
    guard("open_provider", || {
        P::open_provider(name.as_str()).map(FfiProvider::new)
    })
}

#[doc(hidden)]
pub struct ModuleFor<P>(PhantomData<P>);

impl<P: Plugin> ModuleFor<P> {
    staticref! {
        const WM: WithMetadata<PluginMod> = WithMetadata::new(PluginMod {
            manifest: manifest::<P>,
            set_log_sink,
            open_backend: open_backend::<P>,
            open_provider: open_provider::<P>,
        })
    }

    /// The root module of plugin `P`.
    pub const MODULE: PluginMod_Ref = PluginMod_Ref(Self::WM.as_prefix());

    #[doc(hidden)]
    pub fn module() -> PluginMod_Ref {
        Self::MODULE
    }
}

// ---------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------

fn decode<T: DeserializeOwned>(what: &str, result: Json) -> PluginResult<T> {
    let text = result.into_result().map_err(PluginError::from)?;
    serde_json::from_str(text.as_str()).map_err(|e| {
        PluginError::new(
            ErrorKind::Incompatible,
            format!("the plugin's {what} reply could not be read: {e}"),
        )
    })
}

/// Host-side handle to a plugin backend; implements [`Backend`].
pub struct RemoteBackend {
    obj: FfiBackend,
}

// SAFETY: `Backend: Send + Sync` is required of every plugin implementation.
unsafe impl Send for RemoteBackend {}
unsafe impl Sync for RemoteBackend {}

impl Drop for RemoteBackend {
    fn drop(&mut self) {
        // SAFETY: the object is dropped exactly once, here.
        unsafe { (self.obj.vtable.drop())(self.obj.this) }
    }
}

unsafe extern "C" fn write_to_dyn(ctx: *mut ErasedObject, bytes: RSlice<'_, u8>) -> bool {
    // SAFETY: `ctx` is the `&mut &mut dyn Write` created in `logs` below.
    let out = unsafe { &mut *(ctx as *mut &mut dyn std::io::Write) };
    out.write_all(bytes.as_slice())
        .and_then(|_| out.flush())
        .is_ok()
}

impl Backend for RemoteBackend {
    fn info(&self) -> crate::backend::BackendInfo {
        let this = self.obj.this as *const ErasedObject;
        // SAFETY: the vtable came from the plugin with a checked layout.
        decode("info", unsafe { (self.obj.vtable.info())(this) }).unwrap_or_default()
    }

    fn doctor(&self) -> PluginResult<crate::backend::DoctorReport> {
        let this = self.obj.this as *const ErasedObject;
        decode("doctor", unsafe { (self.obj.vtable.doctor())(this) })
    }

    fn launch(&self, request: LaunchRequest) -> PluginResult<crate::backend::BottleSummary> {
        let this = self.obj.this as *const ErasedObject;
        let doc = serde_json::to_string(&request)
            .map_err(|e| PluginError::internal(format!("encoding the launch request: {e}")))?;
        let secrets: Vec<FfiSecret<'_>> = request
            .egress_env
            .iter()
            .map(|(name, value)| FfiSecret {
                name: RStr::from_str(name),
                value: RStr::from_str(value.expose()),
            })
            .collect();
        decode("launch", unsafe {
            (self.obj.vtable.launch())(this, RStr::from_str(&doc), RSlice::from_slice(&secrets))
        })
    }

    fn attach(&self, id: &str, tty: bool) -> PluginResult<i32> {
        let this = self.obj.this as *const ErasedObject;
        unsafe { (self.obj.vtable.attach())(this, RStr::from_str(id), tty) }
            .into_result()
            .map_err(Into::into)
    }

    fn wait(&self, id: &str) -> PluginResult<i32> {
        let this = self.obj.this as *const ErasedObject;
        unsafe { (self.obj.vtable.wait())(this, RStr::from_str(id)) }
            .into_result()
            .map_err(Into::into)
    }

    fn stop(&self, id: &str) -> PluginResult<()> {
        let this = self.obj.this as *const ErasedObject;
        unsafe { (self.obj.vtable.stop())(this, RStr::from_str(id)) }
            .into_result()
            .map_err(Into::into)
    }

    fn remove(&self, id: &str) -> PluginResult<()> {
        let this = self.obj.this as *const ErasedObject;
        unsafe { (self.obj.vtable.remove())(this, RStr::from_str(id)) }
            .into_result()
            .map_err(Into::into)
    }

    fn list(&self) -> PluginResult<Vec<crate::backend::BottleSummary>> {
        let this = self.obj.this as *const ErasedObject;
        decode("list", unsafe { (self.obj.vtable.list())(this) })
    }

    fn logs(
        &self,
        id: &str,
        request: &LogsRequest,
        mut out: &mut dyn std::io::Write,
    ) -> PluginResult<()> {
        let this = self.obj.this as *const ErasedObject;
        let doc = serde_json::to_string(request)
            .map_err(|e| PluginError::internal(format!("encoding the logs request: {e}")))?;
        let writer = FfiWriter {
            ctx: &mut out as *mut &mut dyn std::io::Write as *mut ErasedObject,
            write: write_to_dyn,
            _lifetime: PhantomData,
        };
        unsafe { (self.obj.vtable.logs())(this, RStr::from_str(id), RStr::from_str(&doc), writer) }
            .into_result()
            .map_err(Into::into)
    }

    fn gc(&self, request: &GcRequest) -> PluginResult<crate::backend::GcReport> {
        let this = self.obj.this as *const ErasedObject;
        let doc = serde_json::to_string(request)
            .map_err(|e| PluginError::internal(format!("encoding the gc request: {e}")))?;
        decode("gc", unsafe {
            (self.obj.vtable.gc())(this, RStr::from_str(&doc))
        })
    }
}

/// Host-side handle to a plugin agent provider; implements [`AgentProvider`].
pub struct RemoteProvider {
    obj: FfiProvider,
}

// SAFETY: `AgentProvider: Send + Sync` is required of every implementation.
unsafe impl Send for RemoteProvider {}
unsafe impl Sync for RemoteProvider {}

impl Drop for RemoteProvider {
    fn drop(&mut self) {
        // SAFETY: the object is dropped exactly once, here.
        unsafe { (self.obj.vtable.drop())(self.obj.this) }
    }
}

impl AgentProvider for RemoteProvider {
    fn info(&self) -> crate::provider::ProviderInfo {
        let this = self.obj.this as *const ErasedObject;
        decode("info", unsafe { (self.obj.vtable.info())(this) }).unwrap_or_default()
    }

    fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> PluginResult<crate::provider::AgentProvisionPlan> {
        let this = self.obj.this as *const ErasedObject;
        let doc = serde_json::to_string(request)
            .map_err(|e| PluginError::internal(format!("encoding the provision request: {e}")))?;
        let reply = unsafe { (self.obj.vtable.provision())(this, RStr::from_str(&doc)) }
            .into_result()
            .map_err(PluginError::from)?;
        let mut plan: crate::provider::AgentProvisionPlan =
            serde_json::from_str(reply.plan.as_str()).map_err(|e| {
                PluginError::new(
                    ErrorKind::Incompatible,
                    format!("the plugin's provision reply could not be read: {e}"),
                )
            })?;
        for secret in reply.secrets.iter() {
            let value = std::str::from_utf8(secret.value.as_slice()).map_err(|_| {
                PluginError::new(
                    ErrorKind::Credential,
                    format!("provisioned value `{}` is not UTF-8", secret.name),
                )
            })?;
            plan.provisioned_env
                .insert(secret.name.as_str(), Secret::new(value));
        }
        Ok(plan)
    }
}

impl PluginMod_Ref {
    /// The plugin's manifest.
    pub fn read_manifest(&self) -> PluginResult<crate::plugin::PluginManifest> {
        decode("manifest", (self.manifest())())
    }

    /// Installs the host's log sink in the plugin.
    pub fn install_log_sink(&self, sink: LogFn) {
        (self.set_log_sink())(sink)
    }

    /// Opens a backend.
    pub fn backend(&self, name: &str) -> PluginResult<RemoteBackend> {
        (self.open_backend())(RStr::from_str(name))
            .into_result()
            .map(|obj| RemoteBackend { obj })
            .map_err(Into::into)
    }

    /// Opens an agent provider.
    pub fn provider(&self, name: &str) -> PluginResult<RemoteProvider> {
        (self.open_provider())(RStr::from_str(name))
            .into_result()
            .map(|obj| RemoteProvider { obj })
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(
            super::ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
