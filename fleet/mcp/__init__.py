"""The MCP surface: the operation registry as MCP tools over stdio (`server`), with results in the
compact form models read (`views`).

Inside this package `import mcp` / `from mcp import ...` is the mcp SDK (imports are absolute); this
package is `fleet.mcp`. Importing it loads nothing: the SDK loads with `server`, for `fleet mcp` only.
"""
