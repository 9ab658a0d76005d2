"""Tests of sahara_cli.compute."""
