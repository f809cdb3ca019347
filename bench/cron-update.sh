#!/bin/sh
# The cron-job updater many users write (the baseline in docs/benchmarks.md):
#   * * * * *  /usr/local/bin/update-containers.sh web api worker
# For each container: pull its tag, compare image IDs, and on a change remove it and run it again.
# `docker login` once beforehand stores the registry credentials it pulls with.
# RUN_ARGS holds the `docker run` options the user would write here by hand (ports, volumes, env...).
set -u
for name in "$@"; do
  image=$(docker inspect --format '{{.Config.Image}}' "$name") || continue
  running=$(docker inspect --format '{{.Image}}' "$name")
  docker pull --quiet "$image" >/dev/null || { echo "$name: pull of $image failed" >&2; continue; }
  latest=$(docker image inspect --format '{{.Id}}' "$image")
  if [ "$running" != "$latest" ]; then
    echo "$name: $running -> $latest"
    docker rm -f "$name" >/dev/null
    # shellcheck disable=SC2086  # RUN_ARGS is a list of options
    docker run -d --name "$name" ${RUN_ARGS:-} "$image" >/dev/null
  fi
done
