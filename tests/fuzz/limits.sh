# shellcheck shell=bash
# The largest input each fuzz target's parser accepts (bytes), for run.sh and long.sh. Where
# the real limit is above 8 MiB (LIST and REST bodies: 256 MiB, watch events: 16 MiB), 8 MiB.
max_len_of() {
	case "${1#fuzz_}" in
	http_request) echo 8192 ;;                      # http/httpd.c HTTPD_MAX_REQUEST
	databend_type) echo 4096 ;;                     # DATABEND_TYPE_MAX_BYTES
	kube_exec_credential) echo $((1 << 20)) ;;      # kube/config.c EXEC_MAX_OUTPUT
	grpc_script) echo 1310720 ;;                    # grpc/script.h SCRIPT_MAX_BYTES
	grpc_spec) echo $((2 << 20)) ;;                 # grpc/udf_spec.h UDF_SPEC_MAX_JSON
	grpc_requests | grpc_health) echo $((4 << 20)) ;; # the gRPC server's message limit
	kube_config) echo $((4 << 20)) ;;               # kube/config.c FILE_MAX_BYTES
	worker_flight_auth) echo $((256 << 10)) ;;      # worker/proxy.c PROXY_BUF
	*) echo $((8 << 20)) ;;                         # worker spec bodies, watch, LIST, REST
	esac
}
