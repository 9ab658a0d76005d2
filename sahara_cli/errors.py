"""The one exception tree of sahara.

Every error a user can cause or meet is a :class:`SaharaError`. Each carries

- ``code``: a stable dotted string for scripts (``identity.wrong_password``),
- ``message``: one line saying what went wrong,
- ``hint``: one line saying what to do about it (optional),
- ``exit_code``: the process exit status the CLI uses (see ``docs/cli.md``).

Two axes meet here. *Kinds* (not found, locked, unreachable, ...) fix the exit code;
*areas* (config, identity, node, ...) say where it happened. A concrete error inherits
from one of each, e.g. ``IdentityNotFound(IdentityError, NotFoundError)``, so callers
can catch either ``IdentityError`` or ``NotFoundError``.

Foreign exceptions are translated where they enter the library, never passed through.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ExitCode:
    """Process exit statuses. ``docs/cli.md`` lists them; a test keeps the two in step."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    LOCKED = 4
    UNREACHABLE = 5
    PERMISSION = 6
    CONFLICT = 7
    INVALID_DATA = 8
    INTERRUPTED = 130


class SaharaError(Exception):
    """Base of every error sahara raises on purpose."""

    code: str = "error"
    exit_code: ClassVar[int] = ExitCode.ERROR
    default_hint: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of an error: ``{"code", "message", "hint"}`` (+ details)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            out["details"] = self.details
        return out


# -- kinds: they decide the exit code -------------------------------------------------


class UsageError(SaharaError):
    """The command line itself is wrong (a missing or conflicting option)."""

    code = "usage"
    exit_code = ExitCode.USAGE


class NotFoundError(SaharaError):
    code = "not_found"
    exit_code = ExitCode.NOT_FOUND


class LockedError(SaharaError):
    """A secret is missing or wrong: password, key, license."""

    code = "locked"
    exit_code = ExitCode.LOCKED


class UnreachableError(SaharaError):
    """A service (node, IPFS daemon, peer) did not answer."""

    code = "unreachable"
    exit_code = ExitCode.UNREACHABLE


class PermissionDeniedError(SaharaError):
    code = "permission"
    exit_code = ExitCode.PERMISSION


class ConflictError(SaharaError):
    """The thing to create exists already, or the state forbids the change."""

    code = "conflict"
    exit_code = ExitCode.CONFLICT


class InvalidDataError(SaharaError):
    """A file or value is malformed: bad TOML, a broken keystore, a bad signature."""

    code = "invalid_data"
    exit_code = ExitCode.INVALID_DATA


# -- areas: they say where -------------------------------------------------------------


class ConfigError(SaharaError):
    code = "config.error"


class HomeError(SaharaError):
    code = "home.error"


class IdentityError(SaharaError):
    code = "identity.error"


class NodeError(SaharaError):
    code = "node.error"


class ProtocolError(SaharaError):
    code = "protocol.error"


class LicenseError(ProtocolError):
    code = "license.error"


class VaultError(SaharaError):
    code = "vault.error"


class AgentError(SaharaError):
    code = "agent.error"


class ComputeError(SaharaError):
    code = "compute.error"


# -- concrete errors --------------------------------------------------------------------


class ConfigInvalid(ConfigError, InvalidDataError):
    """The config file cannot be parsed or holds a value of the wrong type."""

    code = "config.invalid"
    default_hint = "Fix the file by hand, or move it away to start from the defaults."


class ConfigKeyUnknown(ConfigError, NotFoundError):
    code = "config.unknown_key"
    default_hint = "Run 'sahara config show' to list the keys."


class ConfigValueInvalid(ConfigError, UsageError):
    code = "config.invalid_value"


class HomeNotFound(HomeError, NotFoundError):
    code = "home.not_found"
    default_hint = "Run 'sahara init' to create it, or pass --home / set SAHARA_HOME."


class HomePermission(HomeError, PermissionDeniedError):
    code = "home.permission"


class IdentityNotFound(IdentityError, NotFoundError):
    code = "identity.not_found"
    default_hint = "Run 'sahara id list' to see your IDs, or 'sahara id create NAME'."


class IdentityExists(IdentityError, ConflictError):
    code = "identity.exists"
    default_hint = "Pick another name, or delete or rename the existing ID first."


class NoDefaultIdentity(IdentityError, NotFoundError):
    code = "identity.no_default"
    default_hint = "Pass --id NAME, or run 'sahara id use NAME' to set a default."


class WrongPassword(IdentityError, LockedError):
    code = "identity.wrong_password"
    default_hint = "Check the password (or the file given with --password-file / SAHARA_PASSWORD)."


class PasswordRequired(IdentityError, LockedError):
    code = "identity.password_required"
    default_hint = (
        "Pass --password-file FILE or set SAHARA_PASSWORD: nobody can be asked with "
        "--no-prompt or without a terminal on standard input."
    )


class KeystoreInvalid(IdentityError, InvalidDataError):
    code = "identity.keystore_invalid"


class SecretInvalid(IdentityError, InvalidDataError):
    """A private key, mnemonic or derivation path read from a file is malformed."""

    code = "identity.secret_invalid"


class AddressInvalid(IdentityError, UsageError):
    """An address a person typed that is not 0x and 40 hex digits, or fails its checksum."""

    code = "identity.bad_address"
    default_hint = (
        "Copy the address again: 0x and 40 hex digits. Mixed case must match its EIP-55 "
        "checksum; all-lowercase or all-uppercase carries none."
    )


class SignatureInvalid(IdentityError, InvalidDataError):
    code = "identity.bad_signature"


class SignatureMismatch(IdentityError):
    """A valid signature, but by someone other than the expected signer."""

    code = "identity.signature_mismatch"


class ConfirmationRequired(UsageError):
    code = "confirmation_required"
    default_hint = "Pass --yes to confirm when running with --no-prompt or without a terminal."


class FileUnreadable(InvalidDataError):
    code = "file.unreadable"


class NodeUnreachable(NodeError, UnreachableError):
    code = "node.unreachable"
    default_hint = "Start a node with 'sahara node start', or set node.rpc_url."


# -- node: the chain, its process and its clients ------------------------------------------


class NodeRPCError(NodeError):
    """The node answered a JSON-RPC request with an error object (seen by the client)."""

    code = "node.rpc_error"

    def __init__(self, message: str, *, rpc_code: int, data: Any = None) -> None:
        super().__init__(
            message, details={"rpc_code": rpc_code, **({"data": data} if data else {})}
        )
        self.rpc_code = rpc_code
        self.data = data


class TxTimeout(NodeError):
    """A transaction has no receipt within the wait."""

    code = "node.tx_timeout"
    default_hint = "The node may be busy or its producer stopped; check 'sahara node status'."


class TxInvalid(NodeError, InvalidDataError):
    """A transaction the node will not accept; ``message`` is the text geth uses."""

    code = "node.tx_invalid"


class TxUndecodable(TxInvalid):
    """The bytes are not a signed transaction."""


class NonceTooHigh(TxInvalid):
    """A transaction whose nonce leaves a gap (CheckTx of a validator refuses it)."""

    code = "node.nonce_too_high"


class ChainNotInitialised(NodeError):
    """The chain's store has no genesis block yet."""

    code = "node.not_initialised"
    default_hint = "Start the node once to write its genesis block."


class GenesisInvalid(NodeError, InvalidDataError):
    code = "node.genesis_invalid"


class ChainStoreError(NodeError):
    """The chain's LMDB store cannot be opened, read or written."""

    code = "node.store"


class BlockBuilderFailed(NodeError):
    """The block builder (a thread or a child process) failed or died."""

    code = "node.builder_failed"


class NodeRunning(NodeError, ConflictError):
    """A node of this home runs already."""

    code = "node.running"


class NodeStartFailed(NodeError):
    """The background node exited or did not answer in time."""

    code = "node.start_failed"


class PortUnavailable(NodeError, ConflictError):
    """The JSON-RPC address is in use or cannot be bound."""

    code = "node.port_unavailable"


class NotDevChain(NodeError, ConflictError):
    """A dev-chain-only operation (``node fund``) against a chain that is not one."""

    code = "node.not_dev_chain"
    default_hint = (
        "On this chain send SAH from a funded ID ('sahara tx send --to ADDRESS|ID --value "
        "SAH'); for a dev chain run 'sahara node start --dev'."
    )


class CometBFTError(NodeError):
    """CometBFT's RPC answered with an error (``message`` is CometBFT's text)."""

    code = "node.cometbft"


class CometBFTUnreachable(CometBFTError, UnreachableError):
    """Nothing answers as a CometBFT RPC at the address."""

    code = "node.cometbft_unreachable"
    default_hint = "Is CometBFT running? Check the CometBFT RPC address (port 26657 by default)."


# -- node: transaction pool ---------------------------------------------------------------
#
# Each ``message`` is the exact text geth uses, because Ethereum clients (web3.py, ethers,
# viem, wallets) match on it; the JSON-RPC layer returns it as the error message with
# code -32000.


class MempoolError(NodeError):
    """The transaction pool refused a transaction."""

    code = "node.mempool"


class TxAlreadyKnown(MempoolError, ConflictError):
    """geth: ``already known``."""

    code = "node.tx_already_known"
    default_hint = "The pool holds this transaction already; wait for it to be mined."


class ReplacementUnderpriced(MempoolError, ConflictError):
    """geth: ``replacement transaction underpriced``."""

    code = "node.replacement_underpriced"
    default_hint = (
        "To replace a pending transaction, raise both its max fee and its priority fee "
        "by the pool's price bump (10% by default)."
    )


class TxPoolFull(MempoolError, ConflictError):
    """geth: ``txpool is full``: the pool is full and this transaction pays the least."""

    code = "node.txpool_full"
    default_hint = "Wait for the next block, or pay a higher priority fee."


class AccountLimitExceeded(MempoolError, ConflictError):
    """geth: ``account limit exceeded``: one sender holds too many pool slots."""

    code = "node.account_limit_exceeded"
    default_hint = "Wait for this account's earlier transactions to be mined."


class NonceTooLow(MempoolError, ConflictError):
    """geth: ``nonce too low``."""

    code = "node.nonce_too_low"
    default_hint = "Use the account's next nonce: eth_getTransactionCount(address, 'pending')."


class OversizedData(MempoolError, InvalidDataError):
    """geth: ``oversized data``: the signed transaction is larger than the pool accepts."""

    code = "node.oversized_data"


class InsufficientFunds(MempoolError, ConflictError):
    """geth: ``insufficient funds for gas * price + value``.

    Cumulative: this transaction's cost plus the costs of the sender's pooled transactions
    that run before it must fit in the balance.
    """

    code = "node.insufficient_funds"
    default_hint = "Fund the account, or lower the value, the gas limit or the max fee."


# -- protocol contracts -------------------------------------------------------------------


class ProtocolNotDeployed(ProtocolError, NotFoundError):
    code = "protocol.not_deployed"
    default_hint = (
        "This chain was created without the protocol contracts; start a new one with "
        "'sahara node reset' (dev chains) or point node.rpc_url at a sahara chain."
    )


class AssetNotFound(ProtocolError, NotFoundError):
    code = "protocol.asset_not_found"
    default_hint = "List assets with 'sahara asset list'."


class ReceiptNotFound(ProtocolError, NotFoundError):
    code = "protocol.receipt_not_found"


class OfferNotFound(LicenseError, NotFoundError):
    code = "license.offer_not_found"
    default_hint = "List offers with 'sahara market list'."


class LicenseNotFound(LicenseError, NotFoundError):
    code = "license.not_found"
    default_hint = "List your licenses with 'sahara license list --mine'."


class NotPermitted(ProtocolError, PermissionDeniedError):
    """A contract allows this only to someone else (the asset owner, its meter...)."""

    code = "protocol.not_permitted"


class TrainingNotLicensed(ComputeError, PermissionDeniedError):
    """A dataset or model of a compute job that its submitter may not train on."""

    code = "compute.not_licensed"
    default_hint = (
        "Training needs ownership or a Full-Access, Long-term or Partnership license "
        "valid now: 'sahara market show ASSET', then 'sahara license buy'."
    )


class ComputeJobNotFound(ComputeError, NotFoundError):
    code = "compute.job_not_found"
    default_hint = "List this home's jobs with 'sahara compute jobs'."


class BondTooSmall(ComputeError, UsageError):
    code = "compute.bond_too_small"
    default_hint = "Leave --bond out to lock the chain's minimum, or give at least that."


class ComputeJobState(ComputeError, ConflictError):
    """A job that cannot do what was asked now (finalise before its window ends...)."""

    code = "compute.job_state"


class ClaimNotFound(ComputeError, NotFoundError):
    """No such claim or dispute in the dispute game, or a job without a trace claim."""

    code = "compute.claim_not_found"


class ClaimHolds(ComputeError, ConflictError):
    """A challenge refused before its bond is sent: the claim re-executes correctly."""

    code = "compute.claim_holds"


class ClaimInputsMismatch(ComputeError, InvalidDataError):
    """A claim whose inputs (datasets, model) are not what its program names."""

    code = "compute.inputs_mismatch"


class OfferClosed(LicenseError, ConflictError):
    code = "license.offer_closed"
    default_hint = "Look for another offer with 'sahara market search'."


class ProtocolInvalidArgument(ProtocolError, UsageError):
    """The contract refused the arguments themselves (weights, shares, prices...)."""

    code = "protocol.invalid_argument"


class ProtocolReverted(ProtocolError, ConflictError):
    """The contract refused the request in the chain's current state."""

    code = "protocol.reverted"


class ProtocolInsufficientFunds(ProtocolError, ConflictError):
    code = "protocol.insufficient_funds"
    default_hint = (
        "Fund the ID first: 'sahara tx send --to ADDRESS --value AMOUNT' from another ID."
    )


class ProtocolIndexError(ProtocolError, InvalidDataError):
    """The local index file cannot be opened, read or written."""

    code = "protocol.index_error"
    default_hint = "The index is a cache of chain events: delete the file to rebuild it."


class NothingToClaim(ProtocolReverted):
    """``claim`` with no revenue credited to the account (the contract would revert)."""

    default_hint = "Revenue is credited when licenses of your assets are bought or metered."


class TxReverted(NodeError):
    """A transaction was mined and reverted (its fee is spent)."""

    code = "node.tx_reverted"


# -- vault ----------------------------------------------------------------------------------


class VaultCidInvalid(VaultError, UsageError):
    """Text that is not a CID, or a CID of a kind the vault does not store."""

    code = "vault.cid_invalid"


class VaultItemNotFound(VaultError, NotFoundError):
    code = "vault.not_found"
    default_hint = "List what the vault holds with 'sahara vault ls'."


class VaultBlockNotFound(VaultError, NotFoundError):
    code = "vault.block_not_found"
    default_hint = "Import the content again ('sahara vault import FILE.car' or 'vault get')."


class VaultBlockCorrupt(VaultError, InvalidDataError):
    """A stored block does not hash to its CID: it was changed on disk or in transit."""

    code = "vault.block_corrupt"
    default_hint = "Remove the item and add or fetch it again; 'sahara vault status' checks all."


class VaultCarInvalid(VaultError, InvalidDataError):
    code = "vault.car_invalid"


class VaultDecryptFailed(VaultError, InvalidDataError):
    """Ciphertext that fails authentication: tampered, truncated or reordered."""

    code = "vault.decrypt_failed"


class VaultWrongKey(VaultError, InvalidDataError):
    """A wrapped data key that this identity's key cannot open."""

    code = "vault.wrong_key"
    default_hint = "Use the identity the key was wrapped to (--id NAME)."


class VaultNoLicense(VaultError, PermissionDeniedError):
    code = "vault.no_license"
    default_hint = "Buy a license first: 'sahara market show ASSET', then 'sahara license buy'."


class VaultLicenseExpired(VaultError, PermissionDeniedError):
    code = "vault.license_expired"
    default_hint = "Renew the license with 'sahara license buy' to fetch the key again."


class VaultRequestInvalid(VaultError, PermissionDeniedError):
    """A key request whose signature, clock or nonce the key server refuses."""

    code = "vault.request_invalid"


class VaultBackendUnreachable(VaultError, UnreachableError):
    code = "vault.backend_unreachable"
    default_hint = "Start the IPFS daemon with 'sahara vault daemon start', or use --backend local."


class VaultBackendError(VaultError):
    """The storage backend answered, but with an error."""

    code = "vault.backend_error"


class VaultKuboMissing(VaultError, NotFoundError):
    code = "vault.kubo_missing"
    default_hint = (
        "Install Kubo with 'go install github.com/ipfs/kubo/cmd/ipfs@v0.39.0' "
        "(scripts/test does this) or set vault.ipfs_bin."
    )


class VaultServerUnreachable(VaultError, UnreachableError):
    code = "vault.server_unreachable"
    default_hint = "Ask the owner to run 'sahara vault serve', or pass --from URL."


class VaultIndexError(VaultError, InvalidDataError):
    """The retrieval index (Chroma) or the embedding model cannot be used."""

    code = "vault.index_error"


class VaultBusy(VaultError, ConflictError):
    """Another sahara process holds the vault's lock (a gc, or writers during a gc)."""

    code = "vault.busy"
    default_hint = "Wait for the other command to finish, then try again."


class VaultRateLimited(VaultError, ConflictError):
    """A vault server refused a request over its per-IP or per-address rate (HTTP 429),
    or while too many checks were pending (HTTP 503)."""

    code = "vault.rate_limited"
    default_hint = "Wait a few seconds and try again (the server limits requests per caller)."


class VaultPortInUse(VaultError, ConflictError):
    code = "vault.port_in_use"


class VaultServeRunning(VaultError, ConflictError):
    code = "vault.serve_running"


class VaultServeStartFailed(VaultError):
    code = "vault.serve_start_failed"


class VaultExists(VaultError, ConflictError):
    """The path or repository to create is there already."""

    code = "vault.exists"


class VaultUnsupportedInput(VaultError, InvalidDataError):
    """Input the vault cannot store as given (a device file, a bad name, a tree too deep)."""

    code = "vault.unsupported_input"


class VaultUnsafeSymlink(VaultError, InvalidDataError):
    """An export would create a symlink that is absolute or leads out of the output."""

    code = "vault.unsafe_symlink"
    default_hint = "The DAG was crafted or comes from another machine; it is not exported."


class VaultExportTooLarge(VaultError, InvalidDataError):
    """An export would write more bytes or entries than its budget (a DAG that expands far
    beyond its stored blocks, or beyond the free space of the output's file system)."""

    code = "vault.export_too_large"
    default_hint = "Nothing was kept at the output path. Check where the item came from."


class VaultCidTaken(VaultError, ConflictError):
    """The content id is registered on chain already, by another address."""

    code = "vault.cid_taken"


class VaultNotSetUp(VaultError, NotFoundError):
    """A key, repository or service the command needs was never created."""

    code = "vault.not_set_up"


# -- localnet --------------------------------------------------------------------------


class SetupError(SaharaError):
    """``sahara setup``: building the external programs sahara drives."""

    code = "setup.error"


class GoMissing(SetupError, NotFoundError):
    code = "setup.go_missing"


class GoBuildFailed(SetupError):
    code = "setup.build_failed"


class LocalnetError(NodeError):
    """``sahara localnet``: N CometBFT validators with their Sahara apps on 127.0.0.1."""

    code = "localnet.error"


class LocalnetNotFound(LocalnetError, NotFoundError):
    code = "localnet.not_found"
    default_hint = "Start one with 'sahara localnet up --validators 4'."


class CometbftMissing(LocalnetError, NotFoundError):
    code = "localnet.cometbft_missing"


class LocalnetNodeUnknown(LocalnetError, UsageError):
    code = "localnet.no_such_node"


class LocalnetRunning(LocalnetError, ConflictError):
    code = "localnet.running"


class LocalnetExists(LocalnetError, ConflictError):
    code = "localnet.exists"


class LocalnetPortInUse(LocalnetError, ConflictError):
    code = "localnet.port_in_use"


class LocalnetStartFailed(LocalnetError):
    """A node exited or did not make blocks in time; ``details.log`` has its last lines."""

    code = "localnet.start_failed"


# --- agents (sahara_cli.agent) ------------------------------------------------------


class AgentNotFound(AgentError, NotFoundError):
    code = "agent.not_found"
    default_hint = "List agents with 'sahara agent list', or create one with 'sahara agent create'."


class AgentExists(AgentError, ConflictError):
    code = "agent.exists"


class AgentSpecInvalid(AgentError, InvalidDataError):
    """An agent or team TOML file that does not parse or does not validate."""

    code = "agent.spec_invalid"


class ModelNotFound(AgentError, NotFoundError):
    code = "agent.model_not_found"
    default_hint = "Add one with 'sahara model add PATH' or 'sahara model pull REPO FILE'."


class ModelInvalid(AgentError, InvalidDataError):
    """A model file that is not a usable GGUF or transformers checkpoint."""

    code = "agent.model_invalid"


class ModelTooLarge(AgentError, ConflictError):
    """The model would not fit in the memory this machine has free."""

    code = "agent.model_too_large"
    default_hint = "Use a smaller or more quantised model, or lower n_ctx."


class ModelDownloadFailed(AgentError, UnreachableError):
    code = "agent.model_download_failed"


class AgentRateLimited(AgentError, ConflictError):
    """An agent server (``agent serve``, ``mcp serve``, an A2A member) refused a caller
    over its per-address rate (HTTP 429)."""

    code = "agent.rate_limited"


class ModelHashMismatch(AgentError, InvalidDataError):
    """A pulled model file is not the one its hub or ``--sha256`` names; nothing is kept."""

    code = "agent.model_hash_mismatch"
    default_hint = "Check --sha256 and --revision; a changed or tampered file is not added."


class RunnerUnavailable(AgentError, NotFoundError):
    """A runner's library (llama-cpp-python, torch) is not installed or cannot load."""

    code = "agent.runner_unavailable"


class ToolNotFound(AgentError, NotFoundError):
    code = "agent.tool_not_found"
    default_hint = "List an agent's tools with 'sahara agent show NAME'."


class ToolArgumentsInvalid(AgentError, UsageError):
    """Tool arguments that are not JSON or do not match the tool's schema."""

    code = "agent.tool_arguments_invalid"


class ToolFailed(AgentError):
    """A tool raised; the session goes on and the model sees the error."""

    code = "agent.tool_failed"


class McpError(AgentError, UnreachableError):
    """An MCP server could not be started, reached, or answered with an error."""

    code = "agent.mcp_error"


class PerceptionUnsupported(AgentError, UsageError):
    """An input the agent's model cannot perceive (an image without a projector)."""

    code = "agent.perception_unsupported"


class AgentAuthFailed(AgentError, PermissionDeniedError):
    """A caller of a served agent with a missing, malformed or stale signature."""

    code = "agent.auth_failed"


class AgentMemoryLocked(AgentError, LockedError):
    """An agent's feedback or memory summaries, sealed to its ID, without that ID's key."""

    code = "agent.memory_locked"
    default_hint = "Unlock the agent's ID: pass --password-file or set SAHARA_PASSWORD."


class AgentNoFeedback(AgentError, UsageError):
    """``agent learn`` on an agent with no feedback it can learn from."""

    code = "agent.no_feedback"
    default_hint = "Rate answers with /good, /bad or /correct in 'sahara agent chat' first."


class AgentLearnUnsupported(AgentError, UsageError):
    """``agent learn`` on an agent whose model cannot take a trained adapter (llama.cpp)."""

    code = "agent.learn_unsupported"
    default_hint = (
        "Learning trains a LoRA adapter on a transformers model: give the agent a "
        "transformers model folder with --runner torch."
    )


class AgentNoLicense(AgentError, PermissionDeniedError):
    """A caller of a served agent without an API license with calls left."""

    code = "agent.no_license"
    default_hint = "Buy calls with 'sahara license buy OFFER --calls N'."


class AgentKeyRevoked(AgentAuthFailed):
    """A caller of a served agent with an API key that was revoked."""

    code = "agent.key_revoked"
    default_hint = "Make a new key with 'sahara agent key NAME'."


class AgentBusy(AgentError, ConflictError):
    """A served agent with as many calls in flight as it takes (HTTP 503)."""

    code = "agent.busy"
    default_hint = "Wait a little and try again (the agent answers one call at a time)."


class AgentServerUnreachable(AgentError, UnreachableError):
    """A served agent (``agent serve``) that did not answer at the URL given."""

    code = "agent.server_unreachable"
    default_hint = "Check the URL (it ends in /v1) and that 'sahara agent serve' runs there."


class AgentRequestTooLarge(AgentError, UsageError):
    """A request to a served agent whose body is larger than the server takes."""

    code = "agent.request_too_large"
    default_hint = "Send a shorter conversation."


class TeamError(AgentError):
    """A team run in which a member failed or could not be reached."""

    code = "agent.team_error"


class AgentRequestRefused(AgentError, PermissionDeniedError):
    """A request to a served A2A agent from a Host or Origin it does not answer."""

    code = "agent.request_refused"
    default_hint = "Call the agent at the URL its card advertises, from a program (not a web page)."


class AgentRequestInvalid(AgentError, UsageError):
    """A request to a served A2A agent that is too large, too slow to arrive, or one too
    many in the replay window."""

    code = "agent.request_invalid"


class NetworkNotAllowed(AgentError, UsageError):
    """A server asked to listen beyond loopback without ``--network``."""

    code = "agent.network_not_allowed"
    default_hint = "Pass --network to listen beyond this machine (callers still sign)."


class RecordNotFound(ProtocolError, NotFoundError):
    """A provenance record id the Provenance contract does not have."""

    code = "protocol.record_not_found"


class AgentPortInUse(AgentError, ConflictError):
    """A server of agents (``agent serve``, ``mcp serve``) cannot listen on its address."""

    code = "agent.port_in_use"
    default_hint = "Pass another --addr HOST:PORT (or --port)."


class ModelExists(AgentError, ConflictError):
    """A model of that name is in the model store already."""

    code = "agent.model_exists"
    default_hint = "Pick another --name, or remove the old one with 'sahara model rm NAME'."


class ContextTooLong(AgentError, UsageError):
    """A prompt that does not fit the model's context window."""

    code = "agent.context_too_long"
    default_hint = (
        "Shorten the conversation or the documents, or load the model with a larger n_ctx."
    )


class LightClientError(NodeError):
    """``sahara light``: headers verified by CometBFT's light client, state by proofs."""

    code = "light.error"


class LightProofInvalid(LightClientError, InvalidDataError):
    """A node's answer that its Merkle proof against the verified state root refutes."""

    code = "light.proof_invalid"


class LightHeaderRejected(LightClientError, InvalidDataError):
    """CometBFT's light client could not verify a header (or the trust root)."""

    code = "light.header_rejected"


class LightUnreachable(LightClientError, UnreachableError):
    code = "light.unreachable"


# -- compute: training ------------------------------------------------------------------


class ComputeSpecInvalid(ComputeError, UsageError):
    """A training spec out of range: a LoRA string, DP budget, batch size, learning rate."""

    code = "compute.spec_invalid"


class BaseModelInvalid(ComputeError, InvalidDataError):
    """The base model is not a local transformers causal LM with weights and a tokenizer."""

    code = "compute.base_model_invalid"
    default_hint = (
        "Give a folder with config.json, the weights (safetensors) and the tokenizer files, "
        "as transformers' save_pretrained writes them."
    )


class NoTrainingData(ComputeError, UsageError):
    code = "compute.no_training_data"
    default_hint = "Add more text, or lower the sequence length (seq_len)."


class CheckpointMismatch(ComputeError, ConflictError):
    """The checkpoint folder holds a run of other hyper-parameters, base model or data."""

    code = "compute.checkpoint_mismatch"
    default_hint = (
        "Resume with the same settings and data, or give another checkpoint folder "
        "(or delete this one to start over)."
    )


class CheckpointCorrupt(ComputeError, InvalidDataError):
    code = "compute.checkpoint_corrupt"
    default_hint = (
        "Nothing was changed; move the checkpoint folder away to start over, "
        "or restore it from a copy."
    )


class TrainingFailed(ComputeError):
    """The training loop itself failed (out of memory, a non-finite loss)."""

    code = "compute.training_failed"
    default_hint = "Lower the batch size or the sequence length, or the learning rate."


class TrainingInterrupted(ComputeError):
    """Training stopped on request after writing a checkpoint (or with none to write)."""

    code = "compute.interrupted"
    exit_code = ExitCode.INTERRUPTED


# -- compute: merging models ------------------------------------------------------------


class ComputeModelNotFound(ComputeError, NotFoundError):
    """A model or adapter folder (or a Fisher file) that does not exist."""

    code = "compute.model_not_found"


class ComputeModelInvalid(ComputeError, InvalidDataError):
    """A model folder without safetensors weights, or a damaged safetensors file."""

    code = "compute.model_invalid"


class MergeIncompatible(ComputeError, UsageError):
    """Models that cannot be merged: other tensors, shapes, architectures or bases."""

    code = "compute.merge_incompatible"
    default_hint = "Merge models of the same architecture, or adapters of the same base model."


class MergeArgumentInvalid(ComputeError, UsageError):
    """A merge asked for wrongly: weights, base, density, method."""

    code = "compute.merge_invalid_argument"


class MergeOutputExists(ComputeError, ConflictError):
    """The merge's output folder exists already; a merge never overwrites."""

    code = "compute.output_exists"
    default_hint = "Choose another output folder, or remove this one first."


class MergeWriteFailed(ComputeError):
    """The merged model cannot be written (a full disk, no permission)."""

    code = "compute.write_failed"


class ProvenanceNotFound(ProtocolError, NotFoundError):
    """No answer record or job with this reference on chain, or no local record to
    check one against."""

    code = "provenance.not_found"
    default_hint = "List records and jobs with 'sahara provenance list'."


class ProvenanceMismatch(ProtocolError, InvalidDataError):
    """A local record (or job file) does not match what the chain recorded for it."""

    code = "provenance.mismatch"
    default_hint = "The local copy was changed after it was recorded, or is of another record."
