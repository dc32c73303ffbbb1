;; The scan's moment kernel (see moment-kernel.ts): per-excerpt power sums and max of a layer
;; block, four or eight neurons at a time in float32x4 lanes, and the columns of the neurons
;; whose max reaches a threshold; plus float32 → float16 conversion of those columns.
;;
;; Assembled at build time by scripts/gen-wasm.ts into wasm-modules.generated.ts.
;; All pointers are byte addresses in the imported memory.
(module
  (import "env" "memory" (memory 1))

  ;; moments4 and moments8 (block, seq, groups, rowBytes, shift, sums, sumsStride, max, threshold,
  ;; columns, reached, first, count) → the new count.
  ;;
  ;; For each group of four (eight) neurons: walks the rows t = 0 … seq−1 of the block (one row is
  ;; rowBytes apart) keeping, per four neurons, four float32x4 running sums of d, d², d²·d, d²·d²
  ;; (d = x − shift) and the max in registers; stores the sums at sums + k·sumsStride
  ;; (k = power − 1) and the max at max. Each neuron of the group whose max ≥ its threshold is then
  ;; listed (reached[count] = first + its index) and its column copied to columns + count·seq·4,
  ;; while the column is still in the cache. seq and groups must be ≥ 1. Eight neurons at a time
  ;; give the processor two independent chains of additions to overlap.
  (func $moments4 (export "moments4")
    (param $block i32) (param $seq i32) (param $groups i32) (param $rowBytes i32)
    (param $shift i32) (param $sums i32) (param $sumsStride i32) (param $max i32)
    (param $threshold i32) (param $columns i32) (param $reached i32) (param $first i32) (param $count i32)
    (result i32)
    (local $g i32) (local $t i32) (local $p i32) (local $q i32) (local $bits i32)
    (local $c v128) (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $s4 v128)
    (local $m v128) (local $x v128) (local $d v128) (local $d2 v128)
    (loop $groups
      (local.set $c (v128.load (local.get $shift)))
      (local.set $s1 (v128.const i32x4 0 0 0 0))
      (local.set $s2 (v128.const i32x4 0 0 0 0))
      (local.set $s3 (v128.const i32x4 0 0 0 0))
      (local.set $s4 (v128.const i32x4 0 0 0 0))
      (local.set $m (f32x4.splat (f32.const -inf)))
      (local.set $p (local.get $block))
      (local.set $t (i32.const 0))
      (loop $rows
        (local.set $x (v128.load (local.get $p)))
        ;; m < x ? x : m
        (local.set $m (f32x4.pmax (local.get $m) (local.get $x)))
        ;; d = x − c; s1 += d; s2 += d²; s3 += d²·d; s4 += d²·d² (the JS kernel's order)
        (local.set $d (f32x4.sub (local.get $x) (local.get $c)))
        (local.set $d2 (f32x4.mul (local.get $d) (local.get $d)))
        (local.set $s1 (f32x4.add (local.get $s1) (local.get $d)))
        (local.set $s2 (f32x4.add (local.get $s2) (local.get $d2)))
        (local.set $s3 (f32x4.add (local.get $s3) (f32x4.mul (local.get $d2) (local.get $d))))
        (local.set $s4 (f32x4.add (local.get $s4) (f32x4.mul (local.get $d2) (local.get $d2))))
        (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
        (br_if $rows (i32.lt_u (local.tee $t (i32.add (local.get $t) (i32.const 1))) (local.get $seq))))
      (local.set $q (local.get $sums))
      (v128.store (local.get $q) (local.get $s1))
      (local.set $q (i32.add (local.get $q) (local.get $sumsStride)))
      (v128.store (local.get $q) (local.get $s2))
      (local.set $q (i32.add (local.get $q) (local.get $sumsStride)))
      (v128.store (local.get $q) (local.get $s3))
      (local.set $q (i32.add (local.get $q) (local.get $sumsStride)))
      (v128.store (local.get $q) (local.get $s4))
      (v128.store (local.get $max) (local.get $m))
      ;; The group's neurons whose max reached the threshold, one bit each.
      (local.set $bits (i32x4.bitmask (f32x4.ge (local.get $m) (v128.load (local.get $threshold)))))
      (local.set $count
        (call $gather (local.get $bits) (i32.const 4) (local.get $block) (local.get $seq) (local.get $rowBytes)
          (local.get $columns) (local.get $reached) (i32.add (local.get $first) (i32.mul (local.get $g) (i32.const 4))) (local.get $count)))
      (local.set $block (i32.add (local.get $block) (i32.const 16)))
      (local.set $shift (i32.add (local.get $shift) (i32.const 16)))
      (local.set $sums (i32.add (local.get $sums) (i32.const 16)))
      (local.set $max (i32.add (local.get $max) (i32.const 16)))
      (local.set $threshold (i32.add (local.get $threshold) (i32.const 16)))
      (br_if $groups (i32.lt_u (local.tee $g (i32.add (local.get $g) (i32.const 1))) (local.get $groups))))
    (local.get $count))

  (func $moments8 (export "moments8")
    (param $block i32) (param $seq i32) (param $groups i32) (param $rowBytes i32)
    (param $shift i32) (param $sums i32) (param $sumsStride i32) (param $max i32)
    (param $threshold i32) (param $columns i32) (param $reached i32) (param $first i32) (param $count i32)
    (result i32)
    (local $g i32) (local $t i32) (local $p i32) (local $q i32) (local $bits i32)
    ;; Neurons 0–3 of the group (a) and 4–7 (b).
    (local $ca v128) (local $s1a v128) (local $s2a v128) (local $s3a v128) (local $s4a v128)
    (local $ma v128) (local $xa v128) (local $da v128) (local $d2a v128)
    (local $cb v128) (local $s1b v128) (local $s2b v128) (local $s3b v128) (local $s4b v128)
    (local $mb v128) (local $xb v128) (local $db v128) (local $d2b v128)
    (loop $groups
      (local.set $ca (v128.load (local.get $shift)))
      (local.set $s1a (v128.const i32x4 0 0 0 0))
      (local.set $s2a (v128.const i32x4 0 0 0 0))
      (local.set $s3a (v128.const i32x4 0 0 0 0))
      (local.set $s4a (v128.const i32x4 0 0 0 0))
      (local.set $ma (f32x4.splat (f32.const -inf)))
      (local.set $cb (v128.load offset=16 (local.get $shift)))
      (local.set $s1b (v128.const i32x4 0 0 0 0))
      (local.set $s2b (v128.const i32x4 0 0 0 0))
      (local.set $s3b (v128.const i32x4 0 0 0 0))
      (local.set $s4b (v128.const i32x4 0 0 0 0))
      (local.set $mb (f32x4.splat (f32.const -inf)))
      (local.set $p (local.get $block))
      (local.set $t (i32.const 0))
      (loop $rows
        (local.set $xa (v128.load (local.get $p)))
        (local.set $ma (f32x4.pmax (local.get $ma) (local.get $xa)))
        (local.set $da (f32x4.sub (local.get $xa) (local.get $ca)))
        (local.set $d2a (f32x4.mul (local.get $da) (local.get $da)))
        (local.set $s1a (f32x4.add (local.get $s1a) (local.get $da)))
        (local.set $s2a (f32x4.add (local.get $s2a) (local.get $d2a)))
        (local.set $s3a (f32x4.add (local.get $s3a) (f32x4.mul (local.get $d2a) (local.get $da))))
        (local.set $s4a (f32x4.add (local.get $s4a) (f32x4.mul (local.get $d2a) (local.get $d2a))))
        (local.set $xb (v128.load offset=16 (local.get $p)))
        (local.set $mb (f32x4.pmax (local.get $mb) (local.get $xb)))
        (local.set $db (f32x4.sub (local.get $xb) (local.get $cb)))
        (local.set $d2b (f32x4.mul (local.get $db) (local.get $db)))
        (local.set $s1b (f32x4.add (local.get $s1b) (local.get $db)))
        (local.set $s2b (f32x4.add (local.get $s2b) (local.get $d2b)))
        (local.set $s3b (f32x4.add (local.get $s3b) (f32x4.mul (local.get $d2b) (local.get $db))))
        (local.set $s4b (f32x4.add (local.get $s4b) (f32x4.mul (local.get $d2b) (local.get $d2b))))
        (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
        (br_if $rows (i32.lt_u (local.tee $t (i32.add (local.get $t) (i32.const 1))) (local.get $seq))))
      (local.set $q (local.get $sums))
      (v128.store (local.get $q) (local.get $s1a))
      (v128.store offset=16 (local.get $q) (local.get $s1b))
      (local.set $q (i32.add (local.get $q) (local.get $sumsStride)))
      (v128.store (local.get $q) (local.get $s2a))
      (v128.store offset=16 (local.get $q) (local.get $s2b))
      (local.set $q (i32.add (local.get $q) (local.get $sumsStride)))
      (v128.store (local.get $q) (local.get $s3a))
      (v128.store offset=16 (local.get $q) (local.get $s3b))
      (local.set $q (i32.add (local.get $q) (local.get $sumsStride)))
      (v128.store (local.get $q) (local.get $s4a))
      (v128.store offset=16 (local.get $q) (local.get $s4b))
      (v128.store (local.get $max) (local.get $ma))
      (v128.store offset=16 (local.get $max) (local.get $mb))
      (local.set $bits
        (i32.or
          (i32x4.bitmask (f32x4.ge (local.get $ma) (v128.load (local.get $threshold))))
          (i32.shl (i32x4.bitmask (f32x4.ge (local.get $mb) (v128.load offset=16 (local.get $threshold)))) (i32.const 4))))
      (local.set $count
        (call $gather (local.get $bits) (i32.const 8) (local.get $block) (local.get $seq) (local.get $rowBytes)
          (local.get $columns) (local.get $reached) (i32.add (local.get $first) (i32.mul (local.get $g) (i32.const 8))) (local.get $count)))
      (local.set $block (i32.add (local.get $block) (i32.const 32)))
      (local.set $shift (i32.add (local.get $shift) (i32.const 32)))
      (local.set $sums (i32.add (local.get $sums) (i32.const 32)))
      (local.set $max (i32.add (local.get $max) (i32.const 32)))
      (local.set $threshold (i32.add (local.get $threshold) (i32.const 32)))
      (br_if $groups (i32.lt_u (local.tee $g (i32.add (local.get $g) (i32.const 1))) (local.get $groups))))
    (local.get $count))

  ;; gather(bits, neurons, block, seq, rowBytes, columns, reached, firstIndex, count) → the new count.
  ;; For each set bit (lane) of the group's `neurons` lanes: reached[count] = firstIndex + lane, and
  ;; the lane's column (seq floats, rowBytes apart from block + lane·4) copied to
  ;; columns + count·seq·4.
  (func $gather
    (param $bits i32) (param $neurons i32) (param $block i32) (param $seq i32) (param $rowBytes i32)
    (param $columns i32) (param $reached i32) (param $firstIndex i32) (param $count i32)
    (result i32)
    (local $lane i32) (local $t i32) (local $from i32) (local $to i32)
    ;; No neuron of the group reached its threshold: the common case.
    (if (i32.eqz (local.get $bits)) (then (return (local.get $count))))
    (loop $lanes
      (if (i32.and (i32.shr_u (local.get $bits) (local.get $lane)) (i32.const 1))
        (then
          (i32.store
            (i32.add (local.get $reached) (i32.shl (local.get $count) (i32.const 2)))
            (i32.add (local.get $firstIndex) (local.get $lane)))
          (local.set $from (i32.add (local.get $block) (i32.shl (local.get $lane) (i32.const 2))))
          (local.set $to (i32.add (local.get $columns) (i32.shl (i32.mul (local.get $count) (local.get $seq)) (i32.const 2))))
          (local.set $t (i32.const 0))
          (loop $rows
            (i32.store (local.get $to) (i32.load (local.get $from)))
            (local.set $from (i32.add (local.get $from) (local.get $rowBytes)))
            (local.set $to (i32.add (local.get $to) (i32.const 4)))
            (br_if $rows (i32.lt_u (local.tee $t (i32.add (local.get $t) (i32.const 1))) (local.get $seq))))
          (local.set $count (i32.add (local.get $count) (i32.const 1)))))
      (br_if $lanes (i32.lt_u (local.tee $lane (i32.add (local.get $lane) (i32.const 1))) (local.get $neurons))))
    (local.get $count))

  ;; toHalf(src, dst, groups): float32 bits → IEEE half bits, eight values per group, rounded to
  ;; nearest even exactly as halfBits (float16.ts) does.
  (func $toHalf (export "toHalf") (param $src i32) (param $dst i32) (param $groups i32)
    (local $i i32)
    (loop $groups
      (v128.store (local.get $dst)
        (i16x8.narrow_i32x4_u
          (call $half4 (v128.load (local.get $src)))
          (call $half4 (v128.load offset=16 (local.get $src)))))
      (local.set $src (i32.add (local.get $src) (i32.const 32)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (br_if $groups (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $groups)))))

  ;; Four float32 (as bits) → four half bits in the low 16 bits of each lane. Per lane: normal
  ;; halves by integer arithmetic on the bits, subnormal ones by letting a float32 addition of 2²³
  ;; round |x|·2²⁴ to an integer, and magnitudes from 2¹⁶ up as infinity (NaN stays NaN); masks
  ;; pick the case.
  (func $half4 (param $x v128) (result v128)
    (local $mag v128) (local $sign v128) (local $r v128)
    (local.set $sign (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)))
    (local.set $mag (v128.and (local.get $x) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
    ;; Normal: ((mag + 0xfff + ((mag >> 13) & 1)) >> 13) − (112 << 10).
    (local.set $r
      (i32x4.sub
        (i32x4.shr_u
          (i32x4.add
            (i32x4.add (local.get $mag) (v128.const i32x4 0xfff 0xfff 0xfff 0xfff))
            (v128.and (i32x4.shr_u (local.get $mag) (i32.const 13)) (v128.const i32x4 1 1 1 1)))
          (i32.const 13))
        (v128.const i32x4 0x1c000 0x1c000 0x1c000 0x1c000)))
    ;; Subnormal (|x| < 2⁻¹⁴): bits(|x| · 2²⁴ + 2²³) − bits(2²³).
    (local.set $r
      (v128.bitselect
        (i32x4.sub
          (f32x4.add
            (f32x4.mul (local.get $mag) (v128.const i32x4 0x4b800000 0x4b800000 0x4b800000 0x4b800000))
            (v128.const i32x4 0x4b000000 0x4b000000 0x4b000000 0x4b000000))
          (v128.const i32x4 0x4b000000 0x4b000000 0x4b000000 0x4b000000))
        (local.get $r)
        (i32x4.lt_s (local.get $mag) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000))))
    ;; From 2¹⁶ up: infinity, or a quiet NaN.
    (v128.or
      (v128.bitselect
        (v128.or
          (v128.and
            (i32x4.gt_s (local.get $mag) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
            (v128.const i32x4 0x200 0x200 0x200 0x200))
          (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))
        (local.get $r)
        (i32x4.ge_s (local.get $mag) (v128.const i32x4 0x47800000 0x47800000 0x47800000 0x47800000)))
      (local.get $sign)))
)
