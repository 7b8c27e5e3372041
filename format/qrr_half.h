/* qrr_half.h — scalar conversions between f32 and the 16-bit storage types of a .qrr
 * (f16, bf16): exact widening, round-to-nearest-even narrowing on bit patterns, so results
 * never depend on compiler flags. A finite value that rounds past the target's range gives
 * infinity (callers that must not overflow check for it); NaN stays a quiet NaN. */
#ifndef QRR_HALF_H
#define QRR_HALF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

float qrr_f16_to_f32(uint16_t h);
float qrr_bf16_to_f32(uint16_t h);
uint16_t qrr_f32_to_f16(float f);
uint16_t qrr_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
