"""The Examples section of every command's ``--help``, by command path.

One to three invocations a user can copy, each one line of at most 76 characters; a test
parses every one against its command (tests/cli/test_help.py). A new command adds its
entry here.
"""

from __future__ import annotations

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "sahara init",
        "sahara node start --dev",
        "sahara vault add notes.txt",
    ),
    "init": ("sahara init", "sahara init --name alice --mnemonic"),
    "doctor": ("sahara doctor", "sahara --json doctor"),
    # setup
    "setup": ("sahara setup kubo", "sahara setup cometbft"),
    "setup kubo": ("sahara setup kubo", "sahara --json setup kubo"),
    "setup cometbft": ("sahara setup cometbft",),
    "balance": ("sahara balance", "sahara balance alice", f"sahara balance {ALICE}"),
    "claim": ("sahara claim --dry-run", "sahara claim --id alice"),
    "events": (
        "sahara events",
        "sahara events --contract Licensing --limit 10",
        "sahara events --asset 3 --oldest-first",
    ),
    "schema": ("sahara schema vault add", "sahara schema node status"),
    # provenance
    "provenance": ("sahara provenance list", "sahara provenance show answer:3"),
    "provenance list": (
        "sahara provenance list",
        "sahara provenance list --agent helper --limit 10",
        "sahara provenance list --asset 3 --jobs",
    ),
    "provenance show": (
        "sahara provenance show answer:3",
        "sahara provenance show legacy:1",
        "sahara provenance show job:2",
    ),
    "provenance verify": (
        "sahara provenance verify answer:3",
        "sahara provenance verify 3 --record answer.json",
        "sahara provenance verify job:2",
    ),
    # config
    "config": ("sahara config show", "sahara config set node.timeout 30"),
    "config show": ("sahara config show", "sahara --json config show"),
    "config get": ("sahara config get node.rpc_url",),
    "config set": ("sahara config set node.timeout 30", "sahara config set vault.backend kubo"),
    "config unset": ("sahara config unset node.timeout",),
    "config path": ("sahara config path",),
    # id
    "id": ("sahara id create alice", "sahara id list"),
    "id create": ("sahara id create alice", "sahara id create bob --mnemonic --words 24"),
    "id import": (
        "sahara id import bob --keystore bob.json",
        "sahara id import dev0 --private-key-file key.txt",
        "sahara id import carol --mnemonic-file words.txt",
    ),
    "id export": ("sahara id export alice -o alice.json", "sahara id export alice --private-key"),
    "id list": ("sahara id list", "sahara --json id list"),
    "id show": ("sahara id show", "sahara id show alice --no-chain"),
    "id use": ("sahara id use alice",),
    "id rename": ("sahara id rename alice alice-laptop",),
    "id delete": ("sahara id delete bob", "sahara id delete bob --yes"),
    "id sign-message": (
        'sahara id sign-message "hello sahara"',
        "sahara id sign-message --file note.txt --id alice",
    ),
    "id verify-message": (
        'sahara id verify-message "hello sahara" --signature 0x5b1c...',
        'sahara id verify-message "hi" -s 0x5b1c... --address 0x70997970...',
    ),
    "id sign-typed-data": ("sahara id sign-typed-data order.json --id alice",),
    # node
    "node": ("sahara node start --dev", "sahara node status", "sahara node stop"),
    "node run": (
        "sahara node run --dev",
        "sahara node run --dev --rpc-addr 127.0.0.1:8545 --block-time 1",
    ),
    "node start": ("sahara node start --dev", "sahara node start --dev --block-time 1s"),
    "node stop": ("sahara node stop",),
    "node status": ("sahara node status", "sahara --json node status"),
    "node logs": ("sahara node logs", "sahara node logs --follow --lines 50"),
    "node reset": ("sahara node reset --yes",),
    "node accounts": ("sahara node accounts",),
    "node fund": ("sahara node fund bob 100", f"sahara node fund {ALICE} 0.5"),
    # localnet
    "localnet": ("sahara localnet up --validators 4", "sahara localnet down"),
    "localnet up": ("sahara localnet up", "sahara localnet up --validators 4 --block-time 500ms"),
    "localnet status": ("sahara localnet status", "sahara --json localnet status"),
    "localnet stop-node": ("sahara localnet stop-node 3",),
    "localnet start-node": ("sahara localnet start-node 3",),
    "localnet logs": ("sahara localnet logs 0", "sahara localnet logs 2 --lines 100"),
    "localnet down": ("sahara localnet down", "sahara localnet down --clean"),
    # light
    "light": ("sahara light head", f"sahara light balance {ALICE}"),
    "light balance": (
        f"sahara light balance {ALICE}",
        f"sahara light balance {ALICE} --block 12",
    ),
    "light storage": (f"sahara light storage {ALICE} 0 1",),
    "light head": ("sahara light head", "sahara light head --comet-rpc http://127.0.0.1:26657"),
    "light follow": ("sahara light follow", "sahara light follow --count 5 --interval 2"),
    # tx
    "tx": (f"sahara tx send --to {ALICE} --value 1.5", "sahara tx show 0x9fc7..."),
    "tx send": (
        f"sahara tx send --to {ALICE} --value 1.5",
        "sahara tx send --to bob --value 0.1 --id alice --no-wait",
    ),
    "tx show": (
        "sahara tx show 0x9fc76417374a...",
        "sahara --json tx show 0x9fc76417374a...",
    ),
    # asset
    "asset": ("sahara asset list --mine", "sahara asset show 3"),
    "asset register": (
        'sahara asset register reviews.csv --kind dataset --name "reviews"',
        "sahara asset register bafybeigdyr... --kind model --parent 3",
    ),
    "asset show": ("sahara asset show 3", "sahara asset show '#3'"),
    "asset list": ("sahara asset list", "sahara asset list --mine --kind model"),
    "asset update": (
        "sahara asset update 3 --uri ipfs://bafybeigdyr...",
        "sahara asset update 3 --meter bob",
    ),
    # license
    "license": ("sahara license offer 3 --type full --price 5", "sahara license buy 1"),
    "license offer": (
        "sahara license offer 3 --type full --price 5",
        "sahara license offer 3 --type api --price-per-call 0.001",
        "sahara license offer 3 --type long-term --price 1 --duration 30d",
    ),
    "license reprice": ("sahara license reprice 1 --price 4",),
    "license pause": ("sahara license pause 1",),
    "license resume": ("sahara license resume 1",),
    "license buy": ("sahara license buy 1", "sahara license buy 2 --calls 100 --id bob --yes"),
    "license accept": ("sahara license accept 4", "sahara license accept 4 --yes"),
    "license meter": ("sahara license meter 2 --calls 10",),
    "license refund": ("sahara license refund 2",),
    "license settle": ("sahara license settle 5 --revenue 12.5",),
    "license show": ("sahara license show 2",),
    "license list": ("sahara license list --mine", "sahara license list --asset 3"),
    "license check": ("sahara license check 3", "sahara license check 3 --user bob --type api"),
    # attribute
    "attribute": (
        "sahara attribute show 3",
        "sahara attribute add 3 --contributor bob --weight 5%",
    ),
    "attribute add": (
        "sahara attribute add 3 --contributor bob --weight 5%",
        "sahara attribute add 3 --contributor dana --weight 500 --id alice",
    ),
    "attribute show": ("sahara attribute show 3",),
    # compute
    "compute": (
        "sahara compute train --base ./tiny-llama --data 3 --max-steps 50",
        "sahara compute jobs",
    ),
    "compute train": (
        "sahara compute train --base ./tiny-llama --data 3 --lora r=8,alpha=16",
        "sahara compute train --base asset:5 --data 3 --data 4 --dp-epsilon 8",
        "sahara compute train --runner fixed --data 3 --hidden 16 --lr 0.0625",
    ),
    "compute merge": (
        "sahara compute merge asset:7 asset:8 --weights 3,1",
        "sahara compute merge asset:7 asset:8 --method ties --base asset:5",
    ),
    "compute jobs": ("sahara compute jobs", "sahara --json compute jobs | jq '.jobs[].state'"),
    "compute show": ("sahara compute show 1", "sahara --json compute show 1 | jq .metrics"),
    "compute finalize": ("sahara compute finalize 1", "sahara compute finalize 1 --wait"),
    "compute cancel": ("sahara compute cancel 1",),
    "compute infer": ("sahara compute infer 4 --input 0.5,-1,2",),
    "compute verify": ("sahara compute verify 1", "sahara compute verify claim:3"),
    "compute challenge": ("sahara compute challenge 1", "sahara compute challenge claim:3"),
    "compute defend": ("sahara compute defend", "sahara compute defend --once"),
    "compute dispute": ("sahara compute dispute show 1",),
    "compute dispute show": ("sahara compute dispute show 1",),
    # market
    "market": ("sahara market list", 'sahara market search "reviews"'),
    "market list": ("sahara market list", "sahara market list --asset 3 --all"),
    "market search": (
        'sahara market search "product reviews"',
        "sahara market search llm --limit 5",
    ),
    "market show": ("sahara market show 1",),
    # vault
    "vault": ("sahara vault add notes.txt", "sahara vault ls", 'sahara vault search "refunds"'),
    "vault add": (
        "sahara vault add notes.txt",
        "sahara vault add papers/ -r --register --kind dataset",
        "sahara vault add photo.png --public",
    ),
    "vault ls": ("sahara vault ls", "sahara --json vault ls"),
    "vault status": ("sahara vault status",),
    "vault gc": ("sahara vault gc --dry-run", "sahara vault gc"),
    "vault get": ("sahara vault get notes.txt -o notes.txt", "sahara vault get 7 -o data"),
    "vault cat": ("sahara vault cat notes.txt", "sahara vault cat bafkreigh2akisc..."),
    "vault rm": ("sahara vault rm notes.txt", "sahara vault rm 7 --yes"),
    "vault share": ("sahara vault share notes.txt --to bob",),
    "vault export": ("sahara vault export notes.txt --car notes.car",),
    "vault import": ("sahara vault import notes.car", "sahara vault import notes.car --name notes"),
    "vault search": (
        'sahara vault search "late delivery refunds"',
        'sahara vault search "refunds" -k 3 --show-text',
    ),
    "vault serve": ("sahara vault serve", "sahara vault serve --detach --addr 127.0.0.1:8700"),
    "vault serve-status": ("sahara vault serve-status", "sahara --json vault serve-status"),
    "vault serve-stop": ("sahara vault serve-stop",),
    "vault daemon": ("sahara vault daemon start", "sahara vault daemon status"),
    "vault daemon start": ("sahara vault daemon start", "sahara vault daemon start --local"),
    "vault daemon stop": ("sahara vault daemon stop",),
    "vault daemon status": ("sahara vault daemon status",),
    # model
    "model": ("sahara model list", "sahara model add ./my-model.gguf --name mine"),
    "model add": (
        "sahara model add ./my-model.gguf --name mine",
        "sahara model add ./gpt2 --runner torch",
    ),
    "model demo": ("sahara model demo", "sahara model demo --runner torch"),
    "model pull": (
        "sahara model pull TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF MODEL.Q4_K_M.gguf",
        "sahara model pull owner/Model-GGUF model.gguf --revision main",
    ),
    "model list": ("sahara model list",),
    "model show": ("sahara model show mine",),
    "model rm": ("sahara model rm mine", "sahara model rm mine --yes"),
    "model default": ("sahara model default", "sahara model default mine"),
    "model register": ("sahara model register mine", "sahara model register mine --public"),
    # agent
    "agent": ("sahara agent create scout -t researcher", 'sahara agent chat scout -m "hi"'),
    "agent create": (
        "sahara agent create scout --template researcher",
        "sahara agent create helper --model mine --persona 'A terse helper.'",
    ),
    "agent templates": ("sahara agent templates",),
    "agent list": ("sahara agent list",),
    "agent show": ("sahara agent show scout",),
    "agent rm": ("sahara agent rm scout", "sahara agent rm scout --yes"),
    "agent chat": (
        "sahara agent chat scout",
        'sahara agent chat scout --message "What is in my vault?"',
        'sahara agent chat scout -m "Summarise my notes." --max-tokens 64',
    ),
    "agent run": (
        "sahara agent run scout --task task.txt",
        "sahara agent run scout --task task.txt --record",
    ),
    "agent learn": (
        "sahara agent learn scout",
        "sahara agent learn scout --dpo --max-steps 50",
        "sahara agent learn scout --epochs 5 --lora r=16,alpha=32 --no-record",
    ),
    "agent publish": ("sahara agent publish scout --price-per-call 0.001",),
    "agent key": ("sahara agent key scout", "sahara agent key scout --ttl 12h --id bob"),
    "agent serve": ("sahara agent serve scout", "sahara agent serve scout --port 8800"),
    "agent feedback": ("sahara agent feedback list scout",),
    "agent feedback list": ("sahara agent feedback list scout",),
    "agent feedback export": ("sahara agent feedback export scout --out train.jsonl",),
    "agent team": ('sahara agent team run team.toml --task "Summarise the notes."',),
    "agent team run": (
        'sahara agent team run team.toml --task "Summarise the notes."',
        "sahara agent team run team.toml --task-file q.txt --network",
    ),
    # mcp
    "mcp": ("sahara mcp serve", "sahara mcp tools"),
    "mcp serve": ("sahara mcp serve", "sahara mcp serve --transport http --addr 127.0.0.1:8765"),
    "mcp key": ("sahara mcp key", "sahara mcp key --ttl 1d --id alice"),
    "mcp tools": ("sahara mcp tools", "sahara mcp tools --scope 'notes*'"),
}
