// A TLS client for the l7 tests, built with OpenSSL linked in statically
// (its SSL_read and SSL_write are the executable's own). After a line on
// stdin it asks 127.0.0.1:PORT for each PATH on a new connection
// (HTTP/1.0: the server closes) and prints each status.
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[16];

	if (argc < 3 || !fgets(line, sizeof line, stdin))
		return 2;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	for (int i = 2; i < argc; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
		char req[256], resp[8192];
		int fd = socket(AF_INET, SOCK_STREAM, 0), n, got = 0;

		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa))
			return 3;
		SSL *ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_connect(ssl) != 1)
			return 4;
		n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", argv[i]);
		if (SSL_write(ssl, req, n) != n)
			return 5;
		while (got < (int)sizeof resp - 1 && (n = SSL_read(ssl, resp + got, sizeof resp - 1 - got)) > 0)
			got += n;
		resp[got] = 0;
		if (got < 12)
			return 6;
		printf("%.3s\n", resp + 9);
		SSL_free(ssl);
		close(fd);
	}
	SSL_CTX_free(ctx);
	return 0;
}
