"""Stage `paper`: compile paper/main.tex into paper/build/paper.pdf with latexmk.

The tables, macros and figures it inputs are written by the `tables` stage. TeX is
a system dependency: when latexmk is missing the stage stops with the apt command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from dnb.params import load_params

APT = ("sudo apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended "
       "texlive-fonts-recommended latexmk   (or: make latex)")


def compile_pdf(tex: Path, out_dir: Path) -> Path:
    """Run latexmk -pdf on ``tex`` (from its folder, so relative inputs resolve); returns the PDF path."""
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        raise SystemExit(f"paper: latexmk/pdflatex not found. Install TeX with: {APT}")
    tex, out_dir = tex.resolve(), out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
           f"-outdir={out_dir}", "-jobname=paper", tex.name]
    done = subprocess.run(cmd, cwd=tex.parent, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stdout.splitlines() if ".tex:" in line or line.startswith("!")]
        tail = "\n".join(errors[-10:]) or done.stdout[-2000:]
        raise SystemExit(f"paper: latexmk failed (log: {out_dir / 'paper.log'}):\n{tail}")
    log = (out_dir / "paper.log").read_text(errors="replace")
    for warning in ("undefined references", "Citation", "Reference"):
        for line in log.splitlines():
            if warning in line and "undefined" in line:
                print(f"paper: warning: {line.strip()}", file=sys.stderr)
                break
    pdf = out_dir / "paper.pdf"
    pages = next((line for line in log.splitlines() if "Output written on" in line), "")
    print(f"paper: {pdf} {pages.split('(')[-1].rstrip(').') if pages else ''}")
    return pdf


def main() -> None:
    params = load_params()["paper"]
    compile_pdf(Path(params["tex"]), Path(params["out_dir"]))


if __name__ == "__main__":
    main()
