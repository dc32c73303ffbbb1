;; The binning loop of the scan's quantile tracking (see histogram-kernel.ts).
;;
;; Assembled at build time by scripts/gen-wasm.ts into wasm-modules.generated.ts.
;; All pointers are byte addresses in the imported memory.
(module
  (import "env" "memory" (memory 1))

  ;; binPending(pending, neurons, from, to, count, bins, sampleSize, table, state, priorities,
  ;; events) → event pairs written. count ≥ 1 and from < to.
  ;;
  ;; For buffered excerpts b = 0 … count−1 and neurons n = from … to−1: the bin j of the excerpt's
  ;; max (pending[b · neurons + n], float32) is table[bits >>> 16] (u16). 0xffff means an edge
  ;; passes through that table entry: the pair (−1 − n, b) is reported for the caller to bin.
  ;; Otherwise the bin (3 u32 of state at state + (n · bins + j) · 12: count, threshold priority,
  ;; held | slot << 8) is counted, and the pair (n · bins + j, b) reported unless the bin's sample
  ;; is full and the excerpt's priority is above its threshold.
  (func (export "binPending")
    (param $pending i32) (param $neurons i32) (param $from i32) (param $to i32) (param $count i32)
    (param $bins i32) (param $sampleSize i32) (param $table i32) (param $state i32)
    (param $priorities i32) (param $events i32)
    (result i32)
    (local $b i32) (local $row i32) (local $priority i32) (local $n i32) (local $j i32)
    (local $st i32) (local $e i32) (local $at i32)
    (loop $excerpts
      (local.set $priority (i32.load (i32.add (local.get $priorities) (i32.shl (local.get $b) (i32.const 2)))))
      (local.set $row (i32.add (local.get $pending) (i32.shl (i32.mul (local.get $b) (local.get $neurons)) (i32.const 2))))
      (local.set $n (local.get $from))
      (loop $neurons
        (block $next
          (local.set $j
            (i32.load16_u
              (i32.add (local.get $table)
                (i32.shl
                  (i32.shr_u (i32.load (i32.add (local.get $row) (i32.shl (local.get $n) (i32.const 2)))) (i32.const 16))
                  (i32.const 1)))))
          (if (i32.eq (local.get $j) (i32.const 0xffff))
            (then
              (local.set $at (i32.add (local.get $events) (i32.shl (local.get $e) (i32.const 3))))
              (i32.store (local.get $at) (i32.sub (i32.const -1) (local.get $n)))
              (i32.store offset=4 (local.get $at) (local.get $b))
              (local.set $e (i32.add (local.get $e) (i32.const 1)))
              (br $next)))
          (local.set $st
            (i32.add (local.get $state)
              (i32.mul (i32.add (i32.mul (local.get $n) (local.get $bins)) (local.get $j)) (i32.const 12))))
          (i32.store (local.get $st) (i32.add (i32.load (local.get $st)) (i32.const 1)))
          ;; A full bin whose threshold priority is below this excerpt's: nothing more to do.
          (if (i32.eq (i32.and (i32.load offset=8 (local.get $st)) (i32.const 0xff)) (local.get $sampleSize))
            (then (br_if $next (i32.gt_u (local.get $priority) (i32.load offset=4 (local.get $st))))))
          (local.set $at (i32.add (local.get $events) (i32.shl (local.get $e) (i32.const 3))))
          (i32.store (local.get $at) (i32.add (i32.mul (local.get $n) (local.get $bins)) (local.get $j)))
          (i32.store offset=4 (local.get $at) (local.get $b))
          (local.set $e (i32.add (local.get $e) (i32.const 1))))
        (br_if $neurons (i32.lt_u (local.tee $n (i32.add (local.get $n) (i32.const 1))) (local.get $to))))
      (br_if $excerpts (i32.lt_u (local.tee $b (i32.add (local.get $b) (i32.const 1))) (local.get $count))))
    (local.get $e))
)
