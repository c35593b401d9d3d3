"""Tests that start the real Codex CLI (a package, so their file names may repeat the topics of tests/)."""
