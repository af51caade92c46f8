use super::*;

fn parse<T: FromParams>(query: &str) -> Result<T, ApiError> {
    T::from_params(&Params::parse_urlencoded(query.as_bytes())?)
}

/// The -400 message of a query that must fail.
fn refusal<T: FromParams + std::fmt::Debug>(query: &str) -> String {
    match parse::<T>(query) {
        Err(ApiError::RequestErr(m)) => m,
        other => panic!("{query}: expected -400, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn key(zone: &str, env: &str, appid: &str, hostname: &str) -> InstanceKey {
    InstanceKey { zone: zone.into(), env: env.into(), appid: appid.into(), hostname: hostname.into() }
}

const REG: &str = "zone=sh001&env=dev&appid=demo.svc&hostname=host-a&status=1&addrs=grpc%3A%2F%2F10.0.0.5%3A9000";

#[test]
fn register_builds_the_command() {
    let q = format!(
        "{REG}&addrs=http://10.0.0.5:8000&region=sh&version=v1&metadata=%7B%22weight%22%3A%2210%22%7D\
         &dirty_timestamp=42&latest_timestamp=7&replication=true&treeid=1&color=red"
    );
    let arg: ArgRegister = parse(&q).expect("valid");
    let expected = RegisterArgs {
        region: "sh".into(),
        key: key("sh001", "dev", "demo.svc", "host-a"),
        addrs: strings(&["grpc://10.0.0.5:9000", "http://10.0.0.5:8000"]),
        version: "v1".into(),
        metadata: Some(BTreeMap::from([("weight".into(), "10".into())])),
        status: 1,
        dirty_timestamp: 42,
    };
    assert!(arg.replication);
    assert_eq!(RegisterArgs::from(arg), expected);
}

#[test]
fn register_minimal_and_waiting() {
    let arg: ArgRegister = parse(&REG.replace("status=1", "status=2")).expect("valid");
    assert_eq!(arg.args.status, 2);
    assert_eq!((arg.args.region.as_str(), arg.args.version.as_str()), ("", ""));
    assert_eq!((arg.args.metadata, arg.args.dirty_timestamp, arg.replication), (None, 0, false));
}

#[test]
fn register_splits_a_comma_joined_addrs_value() {
    let q = "zone=z&env=e&appid=a&hostname=h&status=1&addrs=http://a:1,grpc://b:2";
    assert_eq!(parse::<ArgRegister>(q).expect("valid").args.addrs, strings(&["http://a:1", "grpc://b:2"]));
}

#[test]
fn register_status_must_be_one_or_two() {
    let required = "Key: 'ArgRegister.Status' Error:Field validation for 'Status' failed on the 'required' tag";
    assert_eq!(refusal::<ArgRegister>(&REG.replace("&status=1", "")), required);
    assert_eq!(refusal::<ArgRegister>(&REG.replace("status=1", "status=0")), required);
    assert_eq!(refusal::<ArgRegister>(&REG.replace("status=1", "status=")), required);
    assert_eq!(
        refusal::<ArgRegister>(&REG.replace("status=1", "status=3")),
        r#"invalid parameter "status": must be 1 (up) or 2 (waiting), got 3"#
    );
    assert_eq!(
        refusal::<ArgRegister>(&REG.replace("status=1", "status=-1")),
        r#"parameter "status": strconv.ParseUint: parsing "-1": invalid syntax"#
    );
    assert!(refusal::<ArgRegister>(&REG.replace("status=1", "status=4294967296")).contains("value out of range"));
}

#[test]
fn register_metadata_must_be_an_object_of_strings() {
    for bad in ["%7B%22weight%22%3A10%7D", "%5B%5D", "nope", "%22s%22"] {
        let m = refusal::<ArgRegister>(&format!("{REG}&metadata={bad}"));
        assert!(m.starts_with(r#"invalid parameter "metadata": "#), "{bad}: {m}");
    }
    // What the SDKs send for "no metadata".
    for none in ["", "null"] {
        assert_eq!(parse::<ArgRegister>(&format!("{REG}&metadata={none}")).expect(none).args.metadata, None);
    }
}

#[test]
fn renew_and_cancel() {
    let q = "zone=sh001&env=dev&appid=demo.svc&hostname=host-a&region=sh";
    let renew: ArgRenew = parse(&format!("{q}&replication=1&dirty_timestamp=9")).expect("valid");
    assert_eq!(
        renew,
        ArgRenew { key: key("sh001", "dev", "demo.svc", "host-a"), replication: true, dirty_timestamp: 9 }
    );
    let cancel: ArgCancel = parse(&format!("{q}&latest_timestamp=5")).expect("valid");
    assert_eq!(
        cancel,
        ArgCancel { key: key("sh001", "dev", "demo.svc", "host-a"), replication: false, latest_timestamp: 5 }
    );
    assert_eq!(
        refusal::<ArgRenew>("env=dev&appid=demo.svc&hostname=host-a"),
        "Key: 'ArgRenew.Zone' Error:Field validation for 'Zone' failed on the 'required' tag"
    );
}

const SET: &str = "zone=sh001&env=dev&appid=demo.svc";

#[test]
fn set_builds_the_command() {
    let q = format!(
        "{SET}&region=sh&hostname=h1&hostname=h2&status=1&status=2&metadata=%7B%22w%22%3A%221%22%7D\
         &metadata=null&set_timestamp=11&version=ignored"
    );
    let arg: ArgSet = parse(&q).expect("valid");
    let expected = SetArgs {
        env: "dev".into(),
        appid: "demo.svc".into(),
        zone: "sh001".into(),
        hostnames: strings(&["h1", "h2"]),
        statuses: vec![1, 2],
        metadata: vec![BTreeMap::from([("w".into(), "1".into())]), BTreeMap::new()],
        set_timestamp: 11,
    };
    assert_eq!(arg.region, "sh");
    assert_eq!(SetArgs::from(arg), expected);
    let only_status: ArgSet = parse(&format!("{SET}&hostname=h1&status=2")).expect("valid");
    assert_eq!((only_status.args.statuses, only_status.args.metadata), (vec![2], vec![]));
}

#[test]
fn set_parallel_lists_must_match_hostnames() {
    let status = refusal::<ArgSet>(&format!("{SET}&hostname=h1&hostname=h2&status=1"));
    assert_eq!(
        status,
        r#"invalid parameter "status": 1 values for 2 hostname values: give none, or exactly one per hostname"#
    );
    let meta = refusal::<ArgSet>(&format!("{SET}&hostname=h1&metadata=%7B%7D&metadata=%7B%7D"));
    assert!(meta.starts_with(r#"invalid parameter "metadata": 2 values for 1 hostname"#), "{meta}");
    assert_eq!(
        refusal::<ArgSet>(&format!("{SET}&hostname=h1&status=3")),
        r#"invalid parameter "status": must be 1 (up) or 2 (waiting), got 3"#
    );
    assert!(refusal::<ArgSet>(&format!("{SET}&hostname=h1&status=0")).contains("'Status' failed on the 'required' tag"));
    assert!(refusal::<ArgSet>(&format!("{SET}&hostname=h1&metadata=%7B%22w%22%3A1%7D")).contains(r#""metadata""#));
    assert!(refusal::<ArgSet>(SET).contains("'Hostname' failed on the 'required' tag"));
    let many: String = (0..=MAX_SET_HOSTNAMES).map(|i| format!("&hostname=h{i}")).collect();
    assert!(refusal::<ArgSet>(&format!("{SET}{many}")).starts_with(r#"invalid parameter "hostname": 129 values"#));
}

#[test]
fn fetch_and_fetchs() {
    let fetch: ArgFetch = parse("appid=a&appid=b&env=dev&status=3&consistent=1").expect("valid");
    assert_eq!(fetch, ArgFetch { appid: "a".into(), env: "dev".into(), zone: None, status: 3, consistent: true });
    assert_eq!(parse::<ArgFetch>("appid=a&env=dev&status=1&zone=sh001").expect("valid").zone, Some("sh001".into()));
    let fetchs: ArgFetchs = parse("appid=a&appid=&appid=b&env=dev&status=1").expect("valid");
    assert_eq!(fetchs.appids, strings(&["a", "b"]));
    assert!(!fetchs.consistent);
    assert!(refusal::<ArgFetch>("appid=a&env=dev&status=0").contains("'Status' failed on the 'required' tag"));
    assert_eq!(
        refusal::<ArgFetch>("appid=a&env=dev&status=4"),
        r#"invalid parameter "status": must be 1 (up), 2 (waiting) or 3 (both), got 4"#
    );
    let many: String = (0..=MAX_APPIDS).map(|i| format!("&appid=a{i}")).collect();
    assert!(refusal::<ArgFetchs>(&format!("env=dev&status=1{many}"))
        .starts_with(&format!(r#"invalid parameter "appid": {} values"#, MAX_APPIDS + 1)));
}

const POLLS: &str = "env=dev&hostname=client-1&appid=infra.discovery&appid=demo.svc";

#[test]
fn polls_pairs_appids_with_cursors() {
    let arg: ArgPolls = parse(&format!("{POLLS}&latest_timestamp=0&latest_timestamp=17")).expect("valid");
    let apps = vec![
        AppCursor { appid: "infra.discovery".into(), latest_timestamp: 0 },
        AppCursor { appid: "demo.svc".into(), latest_timestamp: 17 },
    ];
    assert_eq!(arg, ArgPolls { env: "dev".into(), hostname: "client-1".into(), zone: None, apps });
}

#[test]
fn polls_cursor_count_must_match() {
    for tail in [
        "",
        "&latest_timestamp=1",
        "&latest_timestamp=1&latest_timestamp=2&latest_timestamp=3",
        "&latest_timestamp=1&latest_timestamp=",
    ] {
        let m = refusal::<ArgPolls>(&format!("{POLLS}{tail}"));
        assert!(
            m.starts_with(r#"invalid parameter "latest_timestamp": "#) && m.contains("2 appid values"),
            "{tail}: {m}"
        );
    }
    assert!(refusal::<ArgPolls>(&format!("{POLLS}&latest_timestamp=1&latest_timestamp=-2")).contains("must be >= 0"));
}

#[test]
fn poll_takes_the_first_appid_and_tolerates_a_count_mismatch() {
    let arg: ArgPoll = parse(&format!("{POLLS}&latest_timestamp=5&latest_timestamp=6&zone=sh001")).expect("valid");
    assert_eq!(arg.app, AppCursor { appid: "infra.discovery".into(), latest_timestamp: 5 });
    assert_eq!(arg.zone, Some("sh001".into()));
    let mismatch: ArgPoll = parse(&format!("{POLLS}&latest_timestamp=5")).expect("valid");
    assert_eq!(mismatch.app.latest_timestamp, 0);
    assert!(refusal::<ArgPoll>(&format!("{POLLS}&latest_timestamp=x")).contains(r#""latest_timestamp""#));
}

/// Each case: a parser, a query, and the parameter the -400 message must name.
type Case = (fn(&str) -> Option<String>, &'static str, &'static str);

fn msg_of<T: FromParams>(q: &str) -> Option<String> {
    match parse::<T>(q) {
        Err(ApiError::RequestErr(m)) => Some(m),
        _ => None,
    }
}

#[test]
fn every_refusal_names_its_parameter() {
    let cases: &[Case] = &[
        (msg_of::<ArgRegister>, "env=e&appid=a&hostname=h&status=1&addrs=x", "Zone"),
        (msg_of::<ArgRegister>, "zone=z&appid=a&hostname=h&status=1&addrs=x", "Env"),
        (msg_of::<ArgRegister>, "zone=z&env=e&hostname=h&status=1&addrs=x", "AppID"),
        (msg_of::<ArgRegister>, "zone=z&env=e&appid=a&status=1&addrs=x", "Hostname"),
        (msg_of::<ArgRegister>, "zone=z&env=e&appid=a&hostname=h&addrs=x", "Status"),
        (msg_of::<ArgRegister>, "zone=z&env=e&appid=a&hostname=h&status=1", "Addrs"),
        (msg_of::<ArgRegister>, "zone=z&env=e&appid=a&hostname=h%20x&status=1&addrs=x", "\"hostname\""),
        (msg_of::<ArgRegister>, "zone=z&env=e&appid=a&hostname=h&status=1&addrs=x&region=r%0A", "\"region\""),
        (msg_of::<ArgRegister>, "zone=z&env=e&appid=a&hostname=h&status=1&addrs=x&version=%00", "\"version\""),
        (
            msg_of::<ArgRegister>,
            "zone=z&env=e&appid=a&hostname=h&status=1&addrs=x&dirty_timestamp=-1",
            "\"dirty_timestamp\"",
        ),
        (
            msg_of::<ArgRegister>,
            "zone=z&env=e&appid=a&hostname=h&status=1&addrs=x&latest_timestamp=q",
            "\"latest_timestamp\"",
        ),
        (msg_of::<ArgRenew>, "zone=z&env=e&appid=a", "Hostname"),
        (msg_of::<ArgRenew>, "zone=z&env=e&appid=a&hostname=h&dirty_timestamp=x", "\"dirty_timestamp\""),
        (msg_of::<ArgCancel>, "zone=z&env=e&hostname=h", "AppID"),
        (msg_of::<ArgCancel>, "zone=z&env=e&appid=a&hostname=h&latest_timestamp=-3", "\"latest_timestamp\""),
        (msg_of::<ArgSet>, "env=e&appid=a&hostname=h", "Zone"),
        (msg_of::<ArgSet>, "zone=z&env=e&appid=a&hostname=h&set_timestamp=-1", "\"set_timestamp\""),
        (msg_of::<ArgSet>, "zone=z&env=e&appid=a&hostname=h&region=%20", "\"region\""),
        (msg_of::<ArgFetch>, "env=e&status=1", "AppID"),
        (msg_of::<ArgFetch>, "appid=a&status=1", "Env"),
        (msg_of::<ArgFetch>, "appid=a&env=e", "Status"),
        (msg_of::<ArgFetch>, "appid=a&env=e&status=1&zone=a%2Cb", "\"zone\""),
        (msg_of::<ArgFetchs>, "env=e&status=1", "AppID"),
        (msg_of::<ArgFetchs>, "appid=a&appid=b%20c&env=e&status=1", "\"appid\""),
        (msg_of::<ArgPolls>, "hostname=h&appid=a&latest_timestamp=0", "Env"),
        (msg_of::<ArgPolls>, "env=e&appid=a&latest_timestamp=0", "Hostname"),
        (msg_of::<ArgPolls>, "env=e&hostname=h&latest_timestamp=0", "AppID"),
        (msg_of::<ArgPoll>, "env=e&hostname=h", "AppID"),
    ];
    for (parse, query, param) in cases {
        let m = parse(query).unwrap_or_else(|| panic!("{query}: expected -400"));
        assert!(m.contains(param), "{query}: {m:?} does not name {param}");
    }
}
