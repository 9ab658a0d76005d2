"""ABCI 2.0 (CometBFT v0.38) socket server for the node's application."""
