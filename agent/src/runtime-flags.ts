/**
 * How `rasmon-agent.exe` should run for a small footprint: for the exe build (the SEA
 * configuration's `execArgv`, Node 22.20 and later) and for `npm run bench:agent`, which runs the
 * exe's bundled script with the same flags. (A minified bundle was measured too: no RSS change
 * beyond the noise of a run, so the bundle stays readable.)
 *
 * `--lite-mode`: V8 without its optimizing compilers and with lazy feedback allocation. The agent
 * runs a poll a minute and a heartbeat every 15 s; nothing in it is hot enough to gain from
 * optimized code, and the compilers' code and data are what the flag saves (about 5 MiB of RSS at
 * 200 sessions, measured). The heap-size flags were measured too (`--max-semi-space-size=1`,
 * `--max-old-space-size=64`, `--optimize-for-size`): no RSS change for a heap of this size, so
 * they are left out.
 *
 * `--no-expose-wasm`: lite mode turns WebAssembly off anyway (the agent uses none: no fetch, no wasm
 * module), and V8 says so on stderr at every start unless the flag is given too.
 */
export const AGENT_EXEC_ARGV: readonly string[] = Object.freeze(['--lite-mode', '--no-expose-wasm']);
