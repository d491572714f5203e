# An agency: one statically linked binary and nothing else. Its settings file and dataset
# are mounted read-only at run time (see docker-compose-dev.yaml).
FROM scratch
COPY client /client
ENTRYPOINT ["/client"]
