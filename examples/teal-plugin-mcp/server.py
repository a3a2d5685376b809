"""A Teal Agents Python plugin served as an MCP server over streamable HTTP.

teal-serverless runs no Python, so a Teal `plugins:` entry moves here: the plugin class stays as
it is, this file exposes each of its public methods as an MCP tool named the way Teal names it,
`{Plugin}-{method}`, and the agent lists the server under `mcp_servers` with
`tool_names: as-served` so the model sees exactly the names it saw in Teal.

Run:  pip install 'mcp>=1.10,<2' && PORT=8080 python3 server.py
Deploy: the Dockerfile beside this file, as an ECS Fargate service (see docs/migrating-from-teal.md).
"""

import inspect
import os

from mcp.server.fastmcp import FastMCP


class WeatherPlugin:
    """Your Teal plugin, unchanged: in Teal it derives from BasePlugin and its methods carry
    `@kernel_function(description=...)`; both work here (the description is read from the
    decorator when there is one, else from the docstring)."""

    def get_temperature(self, city: str) -> str:
        """Current temperature in a city, in degrees Celsius."""
        return f"{city}: 21.5 C"

    def get_forecast(self, city: str, days: int = 3) -> str:
        """Forecast for the next days in a city."""
        return f"{city}: sunny for {days} day(s)"


def expose(server: FastMCP, plugin: object) -> None:
    """Adds every public method of `plugin` as the tool `{Plugin}-{method}`."""
    plugin_name = type(plugin).__name__
    for name, method in inspect.getmembers(plugin, predicate=inspect.ismethod):
        if name.startswith("_"):
            continue
        function_name = getattr(method, "__kernel_function_name__", name)
        description = getattr(method, "__kernel_function_description__", None) or inspect.getdoc(method) or ""
        server.add_tool(method, name=f"{plugin_name}-{function_name}", description=description)


server = FastMCP(
    "teal-plugins",
    host=os.environ.get("HOST", "0.0.0.0"),
    port=int(os.environ.get("PORT", "8080")),
    # Stateless JSON: any Fargate task can answer any request behind a load balancer.
    stateless_http=True,
    json_response=True,
)
expose(server, WeatherPlugin())

if __name__ == "__main__":
    server.run(transport="streamable-http")
