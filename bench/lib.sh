# Shared by the bench scripts: `result` prints one row of bench/all.sh's table.
# result LABEL MEASURED TARGET MET: MET is "yes", "no" or "n/a" (not measured).
result() { echo "result: $1|$2|$3|$4"; }
# le A B / ge A B: "yes" when A <= B / A >= B (decimal numbers), else "no".
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 <= b + 0) ? "yes" : "no" }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? "yes" : "no" }'; }
both() { [ "$1" = yes ] && [ "$2" = yes ] && echo yes || echo no; }
