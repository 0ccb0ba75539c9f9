#!/bin/sh
# Installs what a fresh Debian 12 / Ubuntu machine needs to build and test
# erlang_python, then builds it. Run from anywhere; uses sudo when not root.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    erlang-nox erlang-dev erlang-common-test erlang-eunit erlang-dialyzer erlang-edoc rebar3 \
    cmake g++ make python3-dev libgtest-dev procps python3-numpy \
    python3-sklearn python3-venv python3-pip elixir

rebar3 compile
