//! `/proc/net/netstat` and `/proc/net/snmp`: pairs of header and value lines (`TcpExt:`, `IpExt:`, `Tcp:` ...).
//!
//! Which counters show a knob running short is the registry's business
//! (`knobs::LIMIT_COUNTERS`, whose test parses this kernel's lines); this parser only reads the numbers.

use std::collections::BTreeMap;

use super::{number, ParseError};

/// Group (`TcpExt`) to counter name to value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Netstat {
    pub groups: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Netstat {
    pub fn get(&self, group: &str, name: &str) -> Option<u64> {
        self.groups.get(group)?.get(name).copied()
    }
}

pub fn parse(text: &str) -> Result<Netstat, ParseError> {
    let mut out = Netstat::default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(ParseError::new(1, "empty netstat"));
    }
    if lines.len() % 2 != 0 {
        return Err(ParseError::new(
            lines.len(),
            "expected pairs of lines (names, then values)",
        ));
    }
    for (i, pair) in lines.chunks(2).enumerate() {
        let n = 2 * i + 1;
        let split = |line: &str, n: usize| -> Result<(String, Vec<String>), ParseError> {
            let (g, rest) = line.split_once(':').ok_or_else(|| {
                ParseError::new(n, format!("expected \"Group: ...\", found {line:?}"))
            })?;
            Ok((
                g.trim().to_string(),
                rest.split_whitespace().map(str::to_string).collect(),
            ))
        };
        let (group, names) = split(pair[0], n)?;
        let (group2, values) = split(pair[1], n + 1)?;
        if group != group2 {
            return Err(ParseError::new(
                n + 1,
                format!("values for {group2:?} follow the names of {group:?}"),
            ));
        }
        if names.len() != values.len() {
            return Err(ParseError::new(
                n + 1,
                format!("{group}: {} names but {} values", names.len(), values.len()),
            ));
        }
        let mut counters = BTreeMap::new();
        for (name, v) in names.into_iter().zip(values) {
            // /proc/net/snmp prints Tcp MaxConn as -1: keep it out rather than fail.
            if v.starts_with('-') {
                continue;
            }
            counters.insert(name, number(n + 1, &v)?);
        }
        out.groups.insert(group, counters);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44: cat /proc/net/netstat (idle host; MPTcpExt cut to its first counters)
    const LINUX_6_18: &str = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue TCPOFODrop TCPOFOMerge TCPChallengeACK TCPSYNChallenge TCPFastOpenActive TCPFastOpenActiveFail TCPFastOpenPassive TCPFastOpenPassiveFail TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent TCPHystartTrainDetect TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd TCPACKSkippedSynRecv TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2 TCPACKSkippedTimeWait TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail TCPMTUPSuccess TCPDelivered TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey TcpTimeoutRehash TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious TCPMigrateReqSuccess TCPMigrateReqFailure TCPPLBRehash TCPAORequired TCPAOBad TCPAOKeyNotFound TCPAOGood TCPAODroppedIcmps
TcpExt: 0 0 0 0 0 0 0 0 0 0 8 0 0 0 0 0 0 0 0 3 0 9 0 0 148 180 142 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2 0 0 0 0 0 64 9 0 0 0 3 47 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1847 0 0 0 0 0 0 0 0 0 0 0 0 2 0 147 107 107 6 0 873 0 0 0 0 0 0 0 0 0 0 0 0 0 0 916 0 0 0 0 0 0 2 0 0 0 0 0 0 0 0 0 0 0
IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps
IpExt: 0 0 0 0 0 0 67642016 263028 0 0 0 0 0 3034 0 0 0 0
MPTcpExt: MPCapableSYNRX MPCapableSYNTX MPCapableSYNACKRX MPCapableACKRX
MPTcpExt: 0 0 0 0
";

    /// Linux 6.18.44: the Tcp lines of /proc/net/snmp (MaxConn is -1)
    const LINUX_6_18_SNMP_TCP: &str = "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 64 2 1 51 0 4941 3706 0 0 58 0
";

    #[test]
    fn parses_linux_6_18() {
        let n = parse(LINUX_6_18).unwrap();
        assert_eq!(n.get("TcpExt", "TW"), Some(8));
        assert_eq!(n.get("TcpExt", "DelayedACKs"), Some(3));
        assert_eq!(n.get("TcpExt", "ListenOverflows"), Some(0));
        assert_eq!(n.get("TcpExt", "TCPHPHits"), Some(148));
        assert_eq!(n.get("TcpExt", "TCPRcvCoalesce"), Some(1847));
        assert_eq!(n.get("IpExt", "InOctets"), Some(67642016));
        assert_eq!(n.get("MPTcpExt", "MPCapableACKRX"), Some(0));
    }

    #[test]
    fn parses_snmp_and_skips_negative_maxconn() {
        let n = parse(LINUX_6_18_SNMP_TCP).unwrap();
        assert_eq!(n.get("Tcp", "CurrEstab"), Some(0));
        assert_eq!(n.get("Tcp", "ActiveOpens"), Some(64));
        assert_eq!(n.get("Tcp", "MaxConn"), None);
    }

    #[test]
    fn rejects_mismatched_lines() {
        assert!(parse("TcpExt: A B\nTcpExt: 1\n")
            .unwrap_err()
            .problem
            .contains("2 names but 1"));
        assert!(parse("TcpExt: A\nIpExt: 1\n").is_err());
        assert!(parse("TcpExt: A\n").is_err());
        assert_eq!(parse("TcpExt: A\nTcpExt: x\n").unwrap_err().line, 2);
    }
}
