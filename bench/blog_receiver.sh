#!/usr/bin/env bash
# The blog's webhook receiver (seed-blog-aliyun-cr-cd: the demo app's /cr handler, run under PM2),
# as shell: when ACR's push trigger arrives, remove the running container, pull the tag, run it again.
#
#   blog_receiver.sh NAME IMAGE PUBLISH        e.g. blog_receiver.sh ali-cr-demo registry/ns/app:master 7023:4396
#
# Kept as the blog has it, on purpose: `docker rm -f` comes first, so the service is down for the whole
# pull and start; no digest check (it redeploys whatever the tag points at), no lock (two hooks close
# together race), no rollback. The registry login is whatever `docker login` stored for this user.
# Each command runs whatever the previous one returned, as a sequence of shell commands does.
set -u
name=$1 image=$2 publish=$3
docker rm -f "$name" >/dev/null
docker pull --quiet "$image" >/dev/null
docker run --name "$name" -p "$publish" --restart always -d "$image" >/dev/null
