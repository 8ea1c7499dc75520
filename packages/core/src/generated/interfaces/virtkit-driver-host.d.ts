/** @module Interface virtkit:driver/host@0.3.0 **/
export function log(level: LogLevel, message: string): void;
/**
 * # Variants
 * 
 * ## `"debug"`
 * 
 * ## `"info"`
 * 
 * ## `"warn"`
 * 
 * ## `"error"`
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
