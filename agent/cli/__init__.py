"""The command line: commands.py parses and prints (the only place that picks exit codes); online.py is
`check --online`, progress.py the pull bars, selfupdate.py the helper container's pass."""
