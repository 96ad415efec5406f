"""`python -m chat_api` serves (chat_api.server); `python -m chat_api keys|usage|migrate ...` are the
operator's commands (chat_api.cli), which do not load the web stack: they start in a second."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    if sys.argv[1:]:
        from chat_api.cli import main as cli_main

        sys.exit(cli_main(sys.argv[1:]))
    from chat_api.server import main

    sys.exit(main())
