/*
 * check_config_cmd — `herald check-config FILE`: validates a config file
 * the way `herald serve --config FILE` would read it, without opening the
 * store or a port, so an operator (or systemd's ExecStartPre, or a package
 * script) finds a mistake before a restart does.
 * Layer: cli (outside the server). Called by main.c.
 *
 * Checked: the file's syntax, every option's name, value and range, the
 * namespace and [key NAME] sections (hash and scopes as the key store
 * reads them), --listen / --tls-listen as HOST:PORT, the TLS options
 * together and their certificate and key files, the JWT secret and key
 * files, --trusted-proxies. Only the file counts: the environment and the
 * command line of a later serve are not read.
 *
 * Prints "FILE: ok" on stdout and returns 0, or prints the reason on
 * stderr and returns 1 (2: bad usage).
 */
#ifndef HD_CLI_CHECK_CONFIG_CMD_H
#define HD_CLI_CHECK_CONFIG_CMD_H

int hd_check_config_cmd_run(int argc, char **argv);

#endif
