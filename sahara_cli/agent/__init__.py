"""Sahara agents: Brain, Perceptor and Actor on llama.cpp or torch, with tools, teams,
serving and metering. Nothing here imports typer, rich or textual."""
