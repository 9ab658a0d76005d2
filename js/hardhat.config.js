// Hardhat's own node, the reference that sahara's end-to-end tests and benchmarks run
// against (tests/e2e/nodes.py starts it). Its built-in "node" network already uses
// chain id 31337, automines, and funds the ten accounts of the mnemonic
// "test test test test test test test test test test test junk". Two settings change:
// the hardfork is pinned to Prague, the newest one py-evm (and so the sahara node)
// runs; and a transaction that reverts is mined and answered with its hash, as geth
// does, instead of Hardhat's default of an error.
import { defineConfig } from "hardhat/config";

export default defineConfig({
  networks: {
    node: {
      type: "edr-simulated",
      hardfork: "prague",
      throwOnTransactionFailures: false,
    },
  },
});
