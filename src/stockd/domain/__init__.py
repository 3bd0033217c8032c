"""stockd's domain core: pure Python, no I/O, nothing imported from the rest of stockd."""
