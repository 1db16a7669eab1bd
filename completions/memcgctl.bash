_memcgctl_completion() {
    local IFS=$'\n'
    local response line type value quoted

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD _MEMCGCTL_COMPLETE=bash_complete "$1")
    COMPREPLY=()
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        type=${line%%,*}
        value=${line#*,}
        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            printf -v quoted '%q' "$value"
            COMPREPLY+=("$quoted")
        fi
    done <<< "$response"

    return 0
}

_memcgctl_completion_setup() {
    complete -o nosort -F _memcgctl_completion memcgctl
}

_memcgctl_completion_setup;
