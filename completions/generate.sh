#!/bin/sh
# Regenerate the shell completion scripts shipped in this directory from
# `memcgctl completion SHELL`: memcgctl.bash (and its link memcgctl),
# _memcgctl for zsh and memcgctl.fish.  Run it after upgrading click or changing the
# completion code; tests/test_completion.py fails while they differ.
#
#   completions/generate.sh            # with python3 -m memcgctl from this tree
#   PYTHON=/path/to/python completions/generate.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
cd "$here/.."  # so that -m memcgctl is this tree's

generate() {  # SHELL FILE
    "$python" -m memcgctl completion "$1" > "$here/$2.new"
    mv "$here/$2.new" "$here/$2"
}

generate bash memcgctl.bash
generate zsh _memcgctl
generate fish memcgctl.fish
# bash-completion looks for a file named after the command; pyproject.toml
# installs this link (as a copy) into share/bash-completion/completions.
ln -sfn memcgctl.bash "$here/memcgctl"
