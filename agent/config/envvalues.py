"""Environment values as env files really deliver them: a Windows line ending, trailing spaces, or the
quotes `docker run --env-file` keeps are stripped, each with a warning that names the variable (never its
value), so that a stray `\\r` never reaches an HTTP header and a `"` never a URL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping


def clean(value: str) -> tuple[str, list[str]]:
    """The value without CR, surrounding spaces and one pair of surrounding quotes; and what was stripped."""
    out, why = value, []
    if "\r" in out:
        out = out.replace("\r", "")
        why.append("a Windows line ending (CRLF)")
    if out != out.strip():
        out = out.strip()
        why.append("leading or trailing spaces")
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'":
        out = out[1:-1]
        why.append("surrounding quotes (docker --env-file keeps them)")
    return out, why


class CleanEnv(Mapping[str, str]):
    """A read-only view of the environment that cleans each value it is asked for and remembers why."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.stripped: dict[str, list[str]] = {}

    def __getitem__(self, name: str) -> str:
        value, why = clean(self._env[name])
        if why:
            self.stripped[name] = why
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)

    def warnings(self) -> list[str]:
        return [
            f"environment variable {name}: stripped {' and '.join(why)} from its value; fix the env file "
            "(one NAME=value per line, no quotes, Unix line endings: `sed -i 's/\\r$//' FILE`)"
            for name, why in sorted(self.stripped.items())
        ]


def env_file_warning(text: str, path: str) -> str | None:
    """For `check` and every command: an env file with Windows line endings, or lines ending in spaces."""
    lines = [ln for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    if any(ln.endswith("\r") for ln in lines):
        return (
            f"{path} has Windows line endings (CRLF): systemd and docker keep the \\r in each value; "
            f"the agent strips it from what it reads, but fix the file: sed -i 's/\\r$//' {path}"
        )
    if any(ln != ln.rstrip() for ln in lines):
        return f"{path} has lines ending in spaces: docker --env-file keeps them in the values; remove them"
    return None
