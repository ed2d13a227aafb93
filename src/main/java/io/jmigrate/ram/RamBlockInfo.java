package io.jmigrate.ram;

/** One entry of the MEM_SIZE block list: a RAMBlock's idstr and used length in bytes. */
public record RamBlockInfo(String idstr, long usedLength) {
    public RamBlockInfo {
        if (idstr == null || idstr.isEmpty()) {
            throw new IllegalArgumentException("RAMBlock idstr must not be empty");
        }
        if (usedLength < 0) {
            throw new IllegalArgumentException("RAMBlock " + idstr + " has negative length");
        }
    }
}
