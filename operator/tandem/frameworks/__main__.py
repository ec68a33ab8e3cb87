"""``python -m tandem.frameworks images``: each framework's worker image, one per line.

For the scripts and tests that build or list the images (tests/e2e/images.py,
hack/build-images.sh), so that the list lives in the registry alone. ``names`` lists the
frameworks themselves.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from . import frameworks

USAGE = "usage: python -m tandem.frameworks images|names"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["images"]:
        print("\n".join(framework.image for framework in frameworks()))
    elif args == ["names"]:
        print("\n".join(framework.name for framework in frameworks()))
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
