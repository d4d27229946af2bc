"""The touches people expect: progress for `voiced models fetch`, shell completion, the man
page, `voiced config show|check`. Real subprocesses of the installed `voiced`, real shells,
a real `pip download` and a real huggingface_hub download (from a local stand-in for the hub)."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VOICED = str(Path(sys.executable).parent / "voiced")
INSTALLER = ROOT / "scripts" / "install-service.sh"


def voiced(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([VOICED, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def on_pty(argv: list[str], env: dict | None = None, timeout: float = 120, size: tuple[int, int] | None = (30, 100),
           send: bytes = b"", until: bytes | None = None) -> str:
    """Run argv on a pseudo-terminal (stdin, stdout and stderr a tty); everything it printed."""
    pid, fd = pty.fork()
    if pid == 0:   # the child: only exec
        try:
            os.execve(argv[0], argv, {**os.environ, "TERM": "xterm", **(env or {})})
        finally:
            os._exit(127)
    if size:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    if send:
        time.sleep(1.0)
        os.write(fd, send)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not (until and until in out):
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:   # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        if until:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    return out.decode(errors="replace")


# ---------------------------------------------------------------- progress

PIP_SNIPPET = textwrap.dedent("""
    import sys
    from voiced.logs import setup_logging
    setup_logging("INFO")
    from voiced.models import progress
    proc = progress.pip_download(["--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                                  "--no-cache-dir", "-d", sys.argv[1], "pip==24.0"], "test", 180)
    print("rc", proc.returncode, proc.stderr.strip().splitlines()[-1:] if proc.returncode else "")
""")


def _pip_snippet(tmp_path: Path) -> list[str]:
    script = tmp_path / "pip_progress.py"
    script.write_text(PIP_SNIPPET)
    return [sys.executable, str(script), str(tmp_path / "dl")]


def _skip_if_offline(out: str) -> None:
    if "rc 0" not in out and re.search(r"(?i)no matching distribution|connection|resolve|network", out):
        pytest.skip(f"the package index is not reachable: {out[-300:]}")


def test_pip_download_shows_a_bar_on_a_terminal(tmp_path):
    out = on_pty(_pip_snippet(tmp_path))
    _skip_if_offline(out)
    assert "rc 0" in out, out
    wheel = tmp_path / "dl" / "pip-24.0-py3-none-any.whl"
    assert wheel.is_file() and wheel.stat().st_size > 2_000_000
    frames = [f for f in re.split(r"[\r\n]+", out) if "pip-24.0-py3-none-any.whl" in f]
    assert frames, out
    last = frames[-1]
    # A bar with the percentage, bytes done/total, rate and time left, redrawn in place.
    assert re.search(r"test: pip-24\.0-py3-none-any\.whl: 100%\|█+\| 2\.0\d?MB/2\.0\d?MB \[[\d.]+[kMG]?B/s, "
                     r"00:00 left\]", last), last
    assert "\r" in out and "INFO" not in out   # no log lines on a terminal


def test_pip_download_logs_plain_lines_off_a_terminal(tmp_path):
    done = subprocess.run(_pip_snippet(tmp_path), capture_output=True, text=True, timeout=240)
    _skip_if_offline(done.stdout + done.stderr)
    assert "rc 0" in done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if "test: pip-24.0" in line]
    assert re.search(r"test: pip-24\.0-py3-none-any\.whl: started \(2\.0 MiB\)$", lines[0]), lines
    assert re.search(r"test: pip-24\.0-py3-none-any\.whl: done, 2\.0 MiB in [\d.]+ s \([\d.]+ [KMG]?i?B/s\)$",
                     lines[-1]), lines
    assert "\r" not in done.stderr and "█" not in done.stderr


PLAIN_SNIPPET = textwrap.dedent("""
    from voiced.models import progress
    lines = []
    with progress.Progress("dl", 1000, tty=False, log=lines.append) as p:
        for _ in range(20):
            p.update(50)
    with progress.step("convert", tty=False, log=lines.append):
        pass
    print("\\n".join(lines))
""")


def test_plain_lines_come_every_ten_percent():
    done = subprocess.run([sys.executable, "-c", PLAIN_SNIPPET], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert lines[0] == "dl: started (1000 B)"
    percents = [int(m.group(1)) for line in lines if (m := re.match(r"dl: (\d+) % \(", line))]
    assert percents == [10, 20, 30, 40, 50, 60, 70, 80, 90], lines
    assert re.match(r"dl: done, 1000 B in [\d.]+ s", lines[-3]), lines
    assert lines[-2:] == ["convert: started", lines[-1]] and re.match(r"convert: done in [\d.]+ s", lines[-1])


STEP_SNIPPET = textwrap.dedent("""
    import time
    from voiced.models import progress
    with progress.step("stt: converting"):
        time.sleep(0.6)
""")


def test_step_of_unknown_length_spins_on_a_terminal():
    out = on_pty([sys.executable, "-c", STEP_SNIPPET], size=None)   # a terminal that reports no size
    frames = [f for f in out.split("\r") if f.startswith("stt: converting")]
    spinners = {f.split()[2] for f in frames[:-1]}
    assert len(spinners) >= 3, frames      # the spinner turns while nothing else moves
    assert re.match(r"stt: converting: done 00:0\d elapsed", frames[-1].strip()), frames


HUB_SNIPPET = textwrap.dedent("""
    import hashlib, http.server, os, sys, tempfile, threading, time
    DATA = os.urandom(3 * 1024 * 1024)
    SHA = hashlib.sha256(DATA).hexdigest()

    class Hub(http.server.BaseHTTPRequestHandler):   # what hf_hub_download needs of the hub
        def log_message(self, *args):
            pass
        def _head(self):
            self.send_response(200)
            self.send_header("X-Repo-Commit", "a" * 40)
            self.send_header("ETag", f'"{SHA}"')
            self.send_header("Content-Length", str(len(DATA)))
            self.send_header("Content-Disposition", 'attachment; filename="weights.bin"')
            self.end_headers()
        def do_HEAD(self):
            self._head()
        def do_GET(self):
            self._head()
            if "/resolve/" in self.path:
                for i in range(0, len(DATA), 256 * 1024):
                    self.wfile.write(DATA[i:i + 256 * 1024])
                    self.wfile.flush()
                    time.sleep(0.03)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
    os.environ["HF_HOME"] = tempfile.mkdtemp()
    from voiced.logs import setup_logging   # sets HF_HUB_DISABLE_PROGRESS_BARS, as the daemon does
    setup_logging("INFO")
    import huggingface_hub.constants
    huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE = 256 * 1024   # progress within a small file
    from huggingface_hub import hf_hub_download
    from voiced.models.progress import hub_progress
    with hub_progress("chatterbox: me/repo") as bar:
        path = hf_hub_download("me/repo", "weights.bin", tqdm_class=bar)
    print("size", os.path.getsize(path))
""")


def test_hub_download_bar_on_a_terminal_plain_lines_off_it(tmp_path):
    script = tmp_path / "hub.py"
    script.write_text(HUB_SNIPPET)
    out = on_pty([sys.executable, str(script)])
    assert "size 3145728" in out, out
    assert re.search(r"weights\.bin: 100%\|█+\| 3\.\d+M/3\.\d+M", out), out
    assert "voiced.models" not in out

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "size 3145728" in done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if "chatterbox: me/repo: weights.bin" in line]
    assert lines[0].endswith("started (3.0 MiB)"), lines
    assert any(re.search(r": [1-9]\d % \([\d.]+ [KM]iB of 3\.0 MiB, [\d.]+ [KM]iB/s, [\d.]+ s left\)$", line)
               for line in lines), lines
    assert re.search(r"done, 3\.0 MiB in [\d.]+ s", lines[-1]), lines
    assert "█" not in done.stderr and "\r" not in done.stderr


# ---------------------------------------------------------------- shell completion

def test_completion_commands_print_scripts():
    for shell, marker in [("bash", "complete -F _voiced voiced"), ("zsh", "#compdef voiced"),
                          ("fish", "complete -c voiced")]:
        done = voiced("completion", shell)
        assert done.returncode == 0 and marker in done.stdout, done.stderr
    assert voiced("completion", "tcsh").returncode == 2


BASH_CASES = {
    "voiced ": "run doctor models transcribe say voices status trigger bench config completion man",
    "voiced co": "config completion",
    "voiced config ": "show check",
    "voiced config show --": "--help --json",
    "voiced --log-level ": "DEBUG INFO WARNING ERROR",
    "voiced --log-level=W": "WARNING",
    "voiced --config {d}/my.toml mo": "models",
    "voiced models ": "list fetch where",
    "voiced completion ": "bash zsh fish",
    "voiced doctor --": "--help --listen --wake --seconds --file",
    "voiced doctor --listen ": "",
    "voiced doctor --file {d}/my.t": "{d}/my.toml",
    "voiced voices ": "list add remove default",
    "voiced voices add anna {d}/my": "{d}/my.toml",
    "voiced config check {d}/m": "{d}/my.toml",
}


def test_bash_completion_loads_and_completes(tmp_path):
    (tmp_path / "my.toml").write_text("")
    script = tmp_path / "voiced.bash"
    script.write_text(voiced("completion", "bash").stdout)
    lines = [f"source {script}", "complete -p voiced",
             't() { read -ra COMP_WORDS <<<"$1"; [[ $1 == *" " ]] && COMP_WORDS+=(""); '
             'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _voiced; echo "${COMPREPLY[*]}"; }']
    cases = {line.format(d=tmp_path): want.format(d=tmp_path) for line, want in BASH_CASES.items()}
    lines += [f"t {json.dumps(line)}" for line in cases]
    done = subprocess.run(["bash", "--norc", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout.split("\n")
    assert out[0] == "complete -F _voiced voiced"
    got = dict(zip(cases, out[1:]))
    assert got == cases


ZSHRC = r"""
fpath=(%s $fpath)
autoload -Uz compinit && compinit -u -D
compadd() {   # print every candidate zsh adds, then add it as usual
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  local -a hits; builtin compadd -A hits "$@"
  local h; for h in $hits; do print -r -- "<""C>$h</""C>" >&2; done
  builtin compadd "$@"
}
_finish() { print -r -- "<""DONE>" >&2 }
comppostfuncs=(_finish)
bindkey '^I' complete-word
"""


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed (apt-get install zsh)")
def test_zsh_completion_completes(tmp_path):
    (tmp_path / "my.toml").write_text("")
    fpath = tmp_path / "fpath"
    fpath.mkdir()
    (fpath / "_voiced").write_text(voiced("completion", "zsh").stdout)
    assert subprocess.run(["zsh", "-n", str(fpath / "_voiced")]).returncode == 0
    (tmp_path / ".zshrc").write_text(ZSHRC % fpath)
    cases = {
        "voiced ": ["run", "doctor", "models", "transcribe", "say", "voices", "status", "trigger", "bench",
                    "config", "completion", "man"],
        "voiced co": ["config", "completion"],
        "voiced config ": ["show", "check"],
        "voiced config show --": ["--help", "--json"],
        "voiced --log-level ": ["DEBUG", "INFO", "WARNING", "ERROR"],
        "voiced models ": ["list", "fetch", "where"],
        f"voiced --config {tmp_path}/my.toml mo": ["models"],
        f"voiced doctor --file {tmp_path}/my.t": ["my.toml"],
    }
    zsh = shutil.which("zsh")
    for line, want in cases.items():
        out = on_pty([zsh, "-i"], env={"ZDOTDIR": str(tmp_path), "HOME": str(tmp_path), "TERM": "dumb"},
                     send=line.encode() + b"\t", until=b"<DONE>", timeout=30)
        assert re.findall(r"<C>(.*?)</C>", out) == want, (line, out[-500:])


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed (apt-get install fish)")
def test_fish_completion_completes(tmp_path):
    (tmp_path / "my.toml").write_text("")
    script = tmp_path / "voiced.fish"
    script.write_text(voiced("completion", "fish").stdout)
    cases = {
        "voiced ": "bench completion config doctor man models run say status transcribe trigger voices",
        "voiced co": "completion config",
        "voiced config ": "check show",
        "voiced config show --": "--help --json",
        "voiced --log-level ": "DEBUG ERROR INFO WARNING",
        "voiced models ": "fetch list where",
        "voiced say --voice ": "",
        f"voiced --config {tmp_path}/my.toml mo": "models",
        f"voiced doctor --file {tmp_path}/my.t": f"{tmp_path}/my.toml",
    }
    for line, want in cases.items():
        done = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C {json.dumps(line)}"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0 and not done.stderr, done.stderr
        got = " ".join(sorted(row.split("\t")[0] for row in done.stdout.splitlines()))
        assert got == " ".join(sorted(want.split())), (line, done.stdout)


# ---------------------------------------------------------------- man page

def test_man_page_renders_without_warnings(tmp_path):
    done = voiced("man", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert done.returncode == 0, done.stderr
    page = tmp_path / "voiced.1"
    page.write_text(done.stdout)
    assert done.stdout.startswith('.\\" Generated') and '.TH VOICED 1 "2023-11-14"' in done.stdout
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "FILES", "ENVIRONMENT",
                    "EXIT STATUS", "SEE ALSO"):
        assert re.search(rf'^\.SH "?{section}"?$', done.stdout, re.M), section
    if not shutil.which("groff"):
        pytest.skip("groff is not installed: checked the roff's structure only")
    render = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(page)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "MANWIDTH": "80"})
    assert render.returncode == 0 and render.stderr == "", render.stderr
    text = re.sub(r".\x08", "", render.stdout)   # overstrike bold/underline
    for expected in ("voiced - a headless, always-on voice daemon", "voiced config check FILE",
                     "voiced completion bash|zsh|fish", "--log-level DEBUG|INFO|WARNING|ERROR",
                     "VOICED_SECTION__KEY", "VOICED_VAD__SILENCE_S=1.2", "78", "EX_CONFIG"):
        assert expected in text, expected
    if shutil.which("man"):
        man = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"})
        assert man.returncode == 0 and man.stderr == "", man.stderr
        assert "EXIT STATUS" in man.stdout


def test_installer_installs_completions_and_man_page(tmp_path):
    # The installer's own function, run against this checkout's venv into a scratch tree.
    function = re.search(r"^install_shell_files\(\) \{.*?^\}$", INSTALLER.read_text(), re.S | re.M).group(0)
    dirs = [tmp_path / d for d in ("bash", "zsh", "fish", "man1")]
    script = f"log() {{ echo \"$*\"; }}\nPREFIX={ROOT}\n{function}\ninstall_shell_files {' '.join(map(str, dirs))}\n"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "installed shell completions (bash, zsh, fish)" in done.stdout
    assert (dirs[0] / "voiced").read_text() == voiced("completion", "bash").stdout
    assert (dirs[1] / "_voiced").read_text().startswith("#compdef voiced")
    assert (dirs[2] / "voiced.fish").is_file() and (dirs[3] / "voiced.1").read_text().startswith('.\\"')
    text = INSTALLER.read_text()
    for path in ("/usr/share/bash-completion/completions", "/usr/share/zsh/vendor-completions",
                 "/usr/share/fish/vendor_completions.d", "/usr/share/man/man1"):
        assert path in text


# ---------------------------------------------------------------- config show / check

def test_config_show_says_where_each_value_came_from(tmp_path):
    config = tmp_path / "voiced.toml"
    config.write_text('[vad]\nthreshold = 0.6\n[web]\ntoken = "abcdefghijklmnopqrstuvwxyz"\n')
    env = {"VOICED_VAD__SILENCE_S": "1.2", "VOICED_RESPONDER__OPENAI_API_KEY": "sk-secret-value"}
    done = voiced("--config", str(config), "config", "show", env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(rf"^threshold = 0\.6 +# from file {re.escape(str(config))}$", out, re.M)
    assert re.search(r"^silence_s = 1\.2 +# from env VOICED_VAD__SILENCE_S$", out, re.M)
    assert re.search(r"^pause_s = 0\.2 +# default$", out, re.M)
    assert re.search(r'^models = \["hey_jarvis"\] +# default$', out, re.M)
    assert re.search(r'^token = "\*{8}" +# from file', out, re.M)
    assert re.search(r'^openai_api_key = "\*{8}" +# from env VOICED_RESPONDER__OPENAI_API_KEY$', out, re.M)
    assert re.search(r'^encryption_key = "" +# default$', out, re.M)
    assert "abcdefghij" not in out and "sk-secret" not in out
    assert "[vad]" in out and "[homeassistant]" in out

    js = json.loads(voiced("--config", str(config), "config", "show", "--json", env=env).stdout)
    assert js["config_file"] == str(config)
    vad = js["settings"]["vad"]
    assert vad["silence_s"] == {"value": 1.2, "source": "env", "from": "VOICED_VAD__SILENCE_S"}
    assert vad["threshold"] == {"value": 0.6, "source": "file", "from": str(config)}
    assert vad["pause_s"] == {"value": 0.2, "source": "default", "from": None}
    assert js["settings"]["web"]["token"]["value"] == "********"


def test_config_show_of_the_shipped_default_is_all_defaults(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICED_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    done = subprocess.run([VOICED, "config", "show", "--json"], capture_output=True, text=True, timeout=60, env=env)
    if Path("/etc/voiced/voiced.toml").exists():
        pytest.skip("/etc/voiced/voiced.toml exists on this machine")
    js = json.loads(done.stdout)
    assert js["shipped_default"] is True
    assert {e["source"] for s in js["settings"].values() for e in s.values()} == {"default"}


def test_config_check(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[wake]\nthreshold = 0.6\n")
    done = voiced("config", "check", str(good))
    assert done.returncode == 0 and done.stdout.strip() == f"{good}: ok", done.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text("[wake]\nthreshold = 7\n")
    done = voiced("config", "check", str(bad))
    assert done.returncode == 78
    assert "wake.threshold: Input should be less than 1 (got 7)" in done.stderr and str(bad) in done.stderr
    assert "Traceback" not in done.stderr

    typo = tmp_path / "typo.toml"
    typo.write_text("[vad]\nsilense_s = 1\n")
    done = voiced("config", "check", str(typo))
    assert done.returncode == 78 and "vad.silense_s: unknown setting (typo?)" in done.stderr

    done = voiced("config", "check", str(good), env={"VOICED_VAD__SILENCE_S": "99"})
    assert done.returncode == 78 and "environment variable VOICED_VAD__SILENCE_S" in done.stderr

    done = voiced("config", "check", str(tmp_path / "missing.toml"))
    assert done.returncode == 78 and "does not exist" in done.stderr

    broken = tmp_path / "broken.toml"
    broken.write_text("[wake\n")
    done = voiced("config", "check", str(broken))
    assert done.returncode == 78 and "not valid TOML" in done.stderr
