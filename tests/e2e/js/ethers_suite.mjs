// What a dapp written with ethers.js v6 relies on, against any JSON-RPC node.
//
//   RPC_URL=http://127.0.0.1:8545 PRIVATE_KEY=0x... SAHARA_NODE_MODULES=... \
//     node tests/e2e/js/ethers_suite.mjs
//
// PRIVATE_KEY must hold some ether. ethers is loaded from SAHARA_NODE_MODULES (the npm
// packages scripts/_setup.sh installs into the cache; ESM imports ignore NODE_PATH, so
// this goes through createRequire). Prints one JSON line: {"ok": true, ...} and exits 0,
// or {"ok": false, "error": ...} and exits 1. tests/e2e/test_ethers_suite.py runs it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const checks = [];

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function loadEthers() {
  const modules = need("SAHARA_NODE_MODULES");
  const require = createRequire(path.join(path.resolve(modules), "..", "package.json"));
  return require("ethers");
}

async function check(name, body) {
  await body();
  checks.push(name);
}

async function main() {
  const { ethers } = loadEthers();
  const artifact = JSON.parse(
    readFileSync(path.join(here, "..", "contracts", "Counter.json"), "utf8"),
  );
  // No response cache: by default ethers answers a repeated request (getBalance before
  // and after a transfer) from a 250 ms cache.
  const provider = new ethers.JsonRpcProvider(need("RPC_URL"), undefined, { cacheTimeout: -1 });
  provider.pollingInterval = 100;
  const wallet = new ethers.Wallet(need("PRIVATE_KEY"), provider);
  const summary = { ok: true, ethers: ethers.version, node: process.version };

  try {
    await check("chainId", async () => {
      const network = await provider.getNetwork();
      const raw = BigInt(await provider.send("eth_chainId", []));
      assert.equal(network.chainId, raw);
      summary.chainId = network.chainId.toString();
    });

    await check("transfer", async () => {
      const recipient = ethers.Wallet.createRandom().address;
      const value = ethers.parseUnits("1234", "gwei");
      const before = await provider.getBalance(wallet.address);
      const tx = await wallet.sendTransaction({ to: recipient, value });
      assert.equal(tx.type, 2);
      const receipt = await tx.wait();
      assert.equal(receipt.status, 1);
      const after = await provider.getBalance(wallet.address);
      // ethers v6 names the receipt's effectiveGasPrice gasPrice.
      assert.equal(before - after, value + receipt.gasUsed * receipt.gasPrice);
      assert.equal(await provider.getBalance(recipient), value);
    });

    let counter;
    await check("deploy", async () => {
      const factory = new ethers.ContractFactory(artifact.abi, artifact.bytecode, wallet);
      counter = await factory.deploy();
      await counter.waitForDeployment();
      const code = await provider.getCode(await counter.getAddress());
      assert.ok(artifact.bytecode.includes(code.slice(2)), "deployed code is not the runtime");
      summary.contract = await counter.getAddress();
    });

    await check("call", async () => {
      assert.equal(await counter.double(21n), 42n);
      assert.equal(await counter.count(), 0n);
    });

    let incremented;
    await check("send and event", async () => {
      const tx = await counter.increment();
      incremented = await tx.wait();
      assert.equal(incremented.status, 1);
      const events = incremented.logs.map((log) => counter.interface.parseLog(log));
      assert.equal(events.length, 1);
      assert.equal(events[0].name, "Incremented");
      assert.equal(events[0].args.caller, wallet.address);
      assert.equal(events[0].args.new_count, 1n);
      assert.equal(await counter.count(), 1n);
    });

    await check("getLogs", async () => {
      const second = await (await counter.increment()).wait();
      const address = await counter.getAddress();
      const topic = counter.interface.getEvent("Incremented").topicHash;
      const logs = await provider.getLogs({
        address,
        topics: [topic, ethers.zeroPadValue(wallet.address, 32)],
        fromBlock: incremented.blockNumber,
        toBlock: second.blockNumber,
      });
      assert.deepEqual(
        logs.map((log) => log.transactionHash),
        [incremented.hash, second.hash],
      );
      const counts = logs.map((log) => counter.interface.parseLog(log).args.new_count);
      assert.deepEqual(counts, [1n, 2n]);
      const filtered = await counter.queryFilter(
        counter.filters.Incremented(wallet.address),
        second.blockNumber,
        second.blockNumber,
      );
      assert.equal(filtered.length, 1);
      assert.equal(filtered[0].args.new_count, 2n);
    });

    await check("revert reason", async () => {
      await assert.rejects(counter.fail.staticCall(), (error) => {
        assert.equal(error.code, "CALL_EXCEPTION");
        assert.equal(error.reason, "counter: nope");
        return true;
      });
    });
  } finally {
    provider.destroy();
  }
  summary.checks = checks;
  return summary;
}

try {
  console.log(JSON.stringify(await main()));
} catch (error) {
  console.error(error);
  console.log(JSON.stringify({ ok: false, passed: checks, error: String(error?.message ?? error) }));
  process.exitCode = 1;
}
