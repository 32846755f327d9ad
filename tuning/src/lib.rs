//! Host inspection and placement plans for `plume tune`.
//!
//! Start reading at [`cli::run`]: it calls [`host::inspect_this_host`]
//! (facts from `/proc`, `/sys` and three probes: `io_uring_setup`,
//! `getrlimit(RLIMIT_MEMLOCK)`, `sched_getaffinity`), then [`report::build`],
//! which proposes a [`plan::Plan`] from the topology and turns the facts
//! into [`advice::Finding`]s (severity ok / advice / problem, each with an
//! exact remedy) and a per-transport capability report (io_uring TCP,
//! AF_XDP, DPDK). [`config_edit`] writes the plan into a node's
//! `config.toml` `[placement]` section.
//!
//! [`parse`] holds the text parsers, all pure functions of a file's
//! contents so tests run them on recorded samples; [`host::inspect`] reads
//! any root directory, so tests also lay out whole recorded hosts.
//!
//! The advisor never changes the system: the only write is `--write`'s
//! atomic replacement of `HOME/config.toml`.

pub mod advice;
pub mod cli;
pub mod config_edit;
pub mod host;
pub mod parse;
pub mod plan;
pub mod report;
