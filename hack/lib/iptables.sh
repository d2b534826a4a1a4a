# shellcheck shell=bash
# The host's packet filter as hack/node.sh found it, and putting it back: every rule, chain and
# table that the kubelet, kube-proxy and the CNI plugins added (KUBE-FIREWALL and its jumps from
# INPUT and OUTPUT, the localnet DROP, KUBE-KUBELET-CANARY, KUBE-SERVICES, CNI-HOSTPORT-*, ...)
# goes, in iptables and ip6tables. Sourced by hack/node.sh, and by tests/node/test_down_up.py
# inside a network namespace of its own. Sourced, never run.

# fw_snapshot DIR: records iptables-save, ip6tables-save and the nftables table list in DIR.
fw_snapshot() {
	iptables-save >"$1/iptables"
	ip6tables-save >"$1/ip6tables" 2>/dev/null || : >"$1/ip6tables"
	if command -v nft >/dev/null; then nft list tables >"$1/nft-tables"; else : >"$1/nft-tables"; fi
}

# fw_restore DIR: deletes every rule, chain and table that is not in DIR's snapshot.
fw_restore() {
	fw_restore_one iptables-save iptables ip "$1/iptables"
	fw_restore_one ip6tables-save ip6tables ip6 "$1/ip6tables"
}

# fw_restore_one SAVE-CMD CMD NFT-FAMILY SNAPSHOT: rules first (they may jump to the chains),
# then the chains, then the tables that were not there at all.
fw_restore_one() {
	local save="$1" cmd="$2" family="$3" snap="$4" now table line
	[ -f "$snap" ] || return 0
	now=$("$save" 2>/dev/null) || return 0
	while IFS=$'\t' read -r table line; do
		[ -n "$table" ] || continue
		eval "$cmd -w -t $table -D ${line#-A }" 2>/dev/null || true
	done < <(fw_new_since "$snap" '^-A ' <<<"$now")
	while IFS=$'\t' read -r table line; do
		[ -n "$table" ] || continue
		line="${line#:}"
		"$cmd" -w -t "$table" -F "${line%% *}" 2>/dev/null || true
	done < <(fw_new_since "$snap" '^:' <<<"$now")
	while IFS=$'\t' read -r table line; do
		[ -n "$table" ] || continue
		line="${line#:}"
		"$cmd" -w -t "$table" -X "${line%% *}" 2>/dev/null || true
	done < <(fw_new_since "$snap" '^:' <<<"$now")
	fw_drop_new_tables "$save" "$cmd" "$family" "$snap"
}

# fw_new_since SNAPSHOT REGEX < SAVE-OUTPUT: "table<TAB>line" for each line matching REGEX in
# the iptables-save output on stdin that the same table of SNAPSHOT lacks. Chain lines (":NAME
# POLICY [counters]") compare by name only. (The snapshot is told apart by its name, not by
# NR == FNR: an empty snapshot, a host with no table yet, would make that true for stdin too.)
fw_new_since() {
	awk -v re="$2" -v snap="$1" '
		function key(l) { if (l ~ /^:/) { split(l, f, " "); return f[1] } return l }
		/^\*/ { t = substr($0, 2); next }
		FILENAME == snap { if ($0 ~ re) seen[t SUBSEP key($0)] = 1; next }
		$0 ~ re && !((t SUBSEP key($0)) in seen) { print t "\t" $0 }
	' "$1" -
}

# fw_drop_new_tables SAVE-CMD CMD NFT-FAMILY SNAPSHOT: iptables-nft creates a table (filter,
# nat, mangle) on first use and no iptables command removes one. A table the snapshot lacks
# that holds nothing any more (built-in chains without rules) is deleted with nft; one that
# still holds anything is someone else's and stays.
fw_drop_new_tables() {
	local save="$1" cmd="$2" family="$3" snap="$4" table left
	command -v nft >/dev/null || return 0
	grep -q nf_tables <<<"$("$cmd" --version 2>/dev/null)" || return 0
	for table in $("$save" 2>/dev/null | sed -n 's/^\*//p'); do
		grep -qxF -- "*$table" "$snap" && continue
		left=$("$save" -t "$table" 2>/dev/null |
			grep -vE '^(#|\*|COMMIT$|:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ACCEPT )' || true)
		[ -z "$left" ] || continue
		nft delete table "$family" "$table" 2>/dev/null || true
	done
}
