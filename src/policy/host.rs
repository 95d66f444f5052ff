//! The wasmtime host. A plugin is compiled once (or loaded from the on-disk cache), linked to a
//! WASI preview-1 context with nothing in it — no preopened directories, no environment, no
//! arguments, no network, a fixed clock — and pre-instantiated. Each evaluation gets a fresh
//! store with a fuel budget (deterministic), an epoch deadline (a wall-clock backstop), a memory
//! cap and capped stdout/stderr pipes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

use super::cache;

/// How often the epoch advances: the resolution of the wall-clock deadline.
const TICK: Duration = Duration::from_millis(10);

/// What one evaluation may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// WebAssembly fuel (about one unit per instruction).
    pub fuel: u64,
    /// Wall-clock backstop.
    pub timeout: Duration,
    /// Linear memory, in bytes.
    pub memory: usize,
    /// Input written to stdin, in bytes.
    pub input: usize,
    /// Output read from stdout, in bytes.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: 20_000_000_000,
            timeout: Duration::from_secs(2),
            memory: 512 << 20,
            input: 256 << 20,
            output: 16 << 20,
        }
    }
}

/// Why an evaluation did not produce a decision.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("is not a usable WebAssembly module: {0}")]
    Compile(String),
    #[error("ran out of fuel after {0} units (an endless loop?); raise `fuel` on the binding if it needs more")]
    Fuel(u64),
    #[error("did not finish within {0:?}; raise `timeout` on the binding if it needs more")]
    Timeout(Duration),
    #[error("tried to use more than {} MiB of memory", .0 >> 20)]
    Memory(usize),
    #[error("wrote more than {} MiB of output", .0 >> 20)]
    Output(usize),
    #[error("the input is {0} bytes, over the limit of {1}")]
    Input(usize, usize),
    #[error("exited with code {code}{}", stderr_suffix(.stderr))]
    Exit { code: i32, stderr: String },
    #[error("trapped: {message}{}", stderr_suffix(.stderr))]
    Trap { message: String, stderr: String },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
}

struct State {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

/// The store's limits, remembering whether one was hit so the error can say so (a guest usually
/// turns a refused `memory.grow` into an abort of its own).
struct Limiter {
    inner: StoreLimits,
    refused: bool,
    /// The most linear memory the plugin asked for and got, for the debug log.
    peak: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.refused |= !ok;
        if ok {
            self.peak = self.peak.max(desired);
        }
        Ok(ok)
    }
    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.table_growing(current, desired, maximum)?;
        self.refused |= !ok;
        Ok(ok)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// One wasmtime engine for the run, and the thread that advances its epoch.
pub struct Host {
    engine: Engine,
    linker: Linker<State>,
    stop: Arc<AtomicBool>,
}

impl Host {
    pub fn new() -> Result<Host, Failure> {
        let mut config = Config::new();
        config.consume_fuel(true).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| Failure::Compile(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(|e| Failure::Compile(format!("{e:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = engine.clone();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("cairn-policy-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticker.increment_epoch();
                }
            })
            .map_err(|e| Failure::Compile(format!("cannot start the deadline thread: {e}")))?;
        Ok(Host { engine, linker, stop })
    }

    /// Compiles (or loads from the cache) and pre-instantiates a module.
    pub fn load(&self, bytes: &[u8]) -> Result<Plugin, Failure> {
        self.load_with_cache(bytes, cache::directory())
    }

    /// As [`Host::load`], with the compiled-module cache in `dir` (none: no cache).
    pub fn load_with_cache(&self, bytes: &[u8], dir: Option<std::path::PathBuf>) -> Result<Plugin, Failure> {
        let module = cache::load_or_compile(&self.engine, bytes, dir)?;
        self.prepare(module)
    }

    fn prepare(&self, module: Module) -> Result<Plugin, Failure> {
        if module.get_export("_start").is_none() {
            return Err(Failure::Compile("it exports no `_start`: build it as a WASI command (a `main`)".into()));
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| Failure::Compile(format!("{e:#}")))?;
        Ok(Plugin { pre })
    }

    /// Runs a plugin once: `input` on stdin, stdout returned. The input is taken by value and
    /// the output handed back without a copy: both can be megabytes for a large environment.
    pub fn evaluate(&self, plugin: &Plugin, input: Vec<u8>, limits: Limits) -> Result<Vec<u8>, Failure> {
        let input_len = input.len();
        if input_len > limits.input {
            return Err(Failure::Input(input_len, limits.input));
        }
        let stdout = MemoryOutputPipe::new(limits.output);
        let stderr = MemoryOutputPipe::new(4096);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(input))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FixedClock)
            .monotonic_clock(FixedClock)
            .build_p1();
        let inner = StoreLimitsBuilder::new().memory_size(limits.memory).instances(4).tables(8).memories(2).build();
        let mut store = Store::new(&self.engine, State { wasi, limiter: Limiter { inner, refused: false, peak: 0 } });
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(limits.fuel).map_err(|e| Failure::Compile(format!("{e:#}")))?;
        let ticks = (limits.timeout.as_millis() / TICK.as_millis()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();

        let result = plugin.pre.instantiate(&mut store).and_then(|instance| {
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        });
        tracing::debug!(
            input = input_len,
            memory = store.data().limiter.peak,
            fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
            "plugin ran"
        );
        let exhausted = memory_exhausted(&store);
        // The store holds the other handle on stdout; once it is gone the buffer is ours alone.
        drop(store);
        let err_text = || String::from_utf8_lossy(&stderr.contents()).trim().chars().take(2000).collect::<String>();
        let Some(out) = stdout.try_into_inner().map(Vec::from) else {
            return Err(Failure::Trap {
                message: "the plugin's output is still held by its store".into(),
                stderr: err_text(),
            });
        };
        let code = match result {
            Ok(()) => 0,
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    exit.0
                } else if out.len() >= limits.output || format!("{e:#}").contains("beyond capacity") {
                    // The pipe refuses a write that does not fit whole, so the output may stop
                    // short of the cap: the pipe's own error says it was full.
                    return Err(Failure::Output(limits.output));
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    return Err(match trap {
                        Trap::OutOfFuel => Failure::Fuel(limits.fuel),
                        Trap::Interrupt => Failure::Timeout(limits.timeout),
                        _ if exhausted => Failure::Memory(limits.memory),
                        other => Failure::Trap { message: other.to_string(), stderr: err_text() },
                    });
                } else if exhausted {
                    return Err(Failure::Memory(limits.memory));
                } else {
                    return Err(Failure::Trap { message: format!("{e:#}"), stderr: err_text() });
                }
            }
        };
        if out.len() >= limits.output {
            return Err(Failure::Output(limits.output));
        }
        if code != 0 {
            if exhausted {
                return Err(Failure::Memory(limits.memory));
            }
            return Err(Failure::Exit { code, stderr: err_text() });
        }
        Ok(out)
    }
}

fn memory_exhausted(store: &Store<State>) -> bool {
    store.data().limiter.refused
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled, linked module, ready to instantiate.
pub struct Plugin {
    pre: InstancePre<State>,
}

/// A clock that tells the plugin nothing about the host: always the epoch, never moving much.
struct FixedClock;

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
