"""Per-invocation state shared by every command: global flags, home, config, keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.commands._output import Output
from sahara_cli.errors import ConfirmationRequired
from sahara_cli.home import Home, resolve_home

if TYPE_CHECKING:
    from sahara_cli.config import LoadedConfig
    from sahara_cli.identity.keys import Signer
    from sahara_cli.identity.store import IdentityInfo, KeyStore

#: The same name as :data:`sahara_cli.identity.passwords.PASSWORD_ENV` (not imported here:
#: ``sahara --help`` loads no identity code).
PASSWORD_ENV = "SAHARA_PASSWORD"  # noqa: S105  # the variable name, not a password


@dataclass
class AppState:
    home_flag: Path | None = None
    json: bool = False
    no_prompt: bool = False
    debug: bool = False
    verbose: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    _config: LoadedConfig | None = field(default=None, init=False)

    @property
    def output(self) -> Output:
        return Output(json_mode=self.json, debug=self.debug)

    @property
    def home(self) -> Home:
        return Home(resolve_home(self.home_flag))

    def config(self) -> LoadedConfig:
        """The effective config (flag > env > file > default), loaded once."""
        if self._config is None:
            from sahara_cli.config import load_config

            self._config = load_config(self.home.config_file, overrides=self.overrides)
            from sahara_cli.log import setup_logging

            log = self._config.config.log
            setup_logging(
                self.home.logs_dir,
                verbose=self.verbose,
                debug=self.debug,
                level=log.level,
                max_bytes=log.max_bytes,
                backups=log.backups,
            )
        return self._config

    def keystore(self) -> KeyStore:
        from sahara_cli.identity.store import KeyStore

        home = self.home.require()
        cfg = self.config().config
        return KeyStore(
            home.keystore_dir,
            config_path=home.config_file,
            default=cfg.identity.default,
            scrypt_n=cfg.identity.scrypt_n,
            trash_dir=home.backups_dir / "deleted-ids",
        )

    def keystore_or_none(self) -> KeyStore | None:
        """The home's keystore, or None when there is no home (for lookups that may fail)."""
        from sahara_cli.errors import HomeError

        try:
            return self.keystore()
        except HomeError:
            return None

    # -- asking the user ---------------------------------------------------------------

    def password(self, password_file: Path | None, *, purpose: str, new: bool = False) -> str:
        """A password from ``--password-file``, then ``SAHARA_PASSWORD``, then a prompt.

        The prompt needs a terminal: with ``--no-prompt`` or a piped stdin the command
        fails with ``identity.password_required`` (see :mod:`sahara_cli.identity.passwords`).
        """
        from sahara_cli.identity.passwords import read_password, why_no_prompt

        def ask(prompt: str, twice: bool) -> str:
            import typer

            return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=twice, err=True))

        reason = why_no_prompt(no_prompt=self.no_prompt)
        return read_password(
            password_file,
            purpose=purpose,
            ask=None if reason else ask,
            cannot_ask=reason or "",
            new=new,
        )

    def unlock(
        self, name: str | None, password_file: Path | None, *, role: str = ""
    ) -> tuple[Signer, IdentityInfo, str]:
        """Resolve an ID (the default when ``name`` is None), ask its password, unlock it.

        Returns the signer, the ID and the password (a background node needs it again).
        """
        store = self.keystore()
        info = store.resolve(name)
        password = self.password(password_file, purpose=f"unlock {role}'{info.name}'")
        with self.output.status(f"Unlocking {info.name}") as progress:
            return store.unlock(info.name, password, progress=progress), info, password

    def confirm(self, question: str, *, yes: bool) -> None:
        """Go on only when ``--yes`` was given or the user agrees at a prompt."""
        if yes:
            return
        if self.no_prompt:
            raise ConfirmationRequired(f"{question} (needs confirmation)")
        import typer

        from sahara_cli.identity.passwords import why_no_prompt

        try:
            agreed = typer.confirm(question, default=False, err=True)
        except typer.Abort:
            reason = why_no_prompt(no_prompt=False)
            if reason is None:  # Ctrl-C or end of input at a terminal
                raise
            # a pipe that ran dry (``< /dev/null``): nobody is there to say yes
            typer.echo("", err=True)  # end the unanswered question's line
            raise ConfirmationRequired(f"{question} (needs confirmation, and {reason})") from None
        if not agreed:
            raise typer.Abort()


def state() -> AppState:
    """The :class:`AppState` of the running command."""
    from typer._click.globals import get_current_context

    obj = get_current_context().find_root().obj
    if not isinstance(obj, AppState):  # a group invoked outside the root app (tests)
        obj = AppState()
    return obj
