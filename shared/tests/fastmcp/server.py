"""A FastMCP server (PyPI `mcp` 1.x) for the pool's interoperability tests.

Usage: server.py stateful|stateless PORT. Tools: `echo` (returns its text), `ask` (asks the
client for the user's name through elicitation and says what came back). Logs "Uvicorn running"
on stderr once it listens; stops when its stdin closes (the test's end).
"""

import sys
import threading
import os

from pydantic import BaseModel

from mcp.server.fastmcp import Context, FastMCP

mode, port = sys.argv[1], int(sys.argv[2])
server = FastMCP(
    "teal-interop",
    host="127.0.0.1",
    port=port,
    stateless_http=mode == "stateless",
    json_response=mode == "stateless",
    log_level="INFO",
)


class Name(BaseModel):
    name: str


@server.tool()
def echo(text: str) -> str:
    """Returns its text."""
    return f"echo {text}"


@server.tool()
async def ask(ctx: Context) -> str:
    """Asks the user's name."""
    try:
        answer = await ctx.elicit("What is your name?", schema=Name)
        return f"answered {answer.action}"
    except Exception as error:  # the client refused to ask
        return f"could not ask: {error}"


def stop_with_stdin():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=stop_with_stdin, daemon=True).start()
server.run(transport="streamable-http")
