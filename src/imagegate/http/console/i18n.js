// Every string the console shows, in English and Chinese; the language follows the browser's
// (navigator.language) until the reader picks one with the switch.
export const STRINGS = {
  en: {
    signin_title: "Sign in", signin_help: "Use the admin key (operator) or an API key issued by this gateway.",
    key: "Key", signin: "Sign in", signout: "Sign out", operator: "Operator",
    playground: "Playground", history: "History", account: "Account", keys: "Keys", channels: "Channels",
    usage: "Usage", jobs: "Jobs", prompt: "Prompt", model: "Model", size: "Size", quality: "Quality",
    format: "Format", background: "Background", n: "Images", seed: "Seed (optional)", stream: "Show partial images",
    generate: "Generate", edit: "Edit", generating: "Generating…", presets: "Presets", mode: "Mode",
    mode_generate: "Generate", mode_edit: "Edit", images_in: "Images to edit", mask: "Mask",
    brush: "Brush", eraser: "Eraser", clear: "Clear", brush_size: "Brush size",
    mask_help: "Paint the area to change; the painted part becomes transparent in the mask.",
    cost: "Cost", usage_tokens: "Tokens", result: "Result", partial: "Partial image",
    balance: "Balance", spent: "Spent", limits: "Limits", requests: "Requests", none: "none",
    name: "Name", tier: "Tier", credit: "Credit (USD)", rpm: "Requests / min", rpd: "Requests / day",
    ipm: "Images / min", concurrency: "Concurrency", expires: "Expires (date)", create_key: "Create key",
    new_key_once: "The new key, shown once: copy it now.", copy: "Copy", topup: "Top up", revoke: "Revoke",
    amount: "Amount (USD)", status: "Status", prefix: "Key", created: "Created", actions: "Actions",
    provider: "Provider", base_url: "Base URL", api_key: "Provider API key", models: "Models (comma-separated)",
    priority: "Priority", add_channel: "Add channel", test: "Test", enable: "Enable", disable: "Disable",
    health: "Health", breaker: "Breaker", why_disabled: "Why disabled", channel_cost: "Cost to you",
    test_ok: "The channel answered.", test_failed: "The test failed: ", enabled: "enabled", disabled: "disabled",
    by_day: "By day", by_key: "By key", by_channel: "By channel", spend: "Spend", operator_cost: "Operator cost",
    margin: "Margin", images: "Images", failed: "Failed", days: "Days", no_data: "No usage yet.",
    jobs_queue: "Jobs queue", forbidden: "This page is the operator's.", confirm_revoke: "Revoke this key?",
    saved: "Saved.", error: "Error", auto: "auto", transparent: "transparent", opaque: "opaque",
    custom: "Custom", recipes: "Recipes", no_history: "No images yet.", open: "Open", expired: "expired",
    per_channel_margin: "Margin by channel (USD)", daily: "Per day (USD)", welcome: "Signed in as",
  },
  zh: {
    signin_title: "登录", signin_help: "使用管理员密钥（运营方）或本网关签发的 API 密钥。",
    key: "密钥", signin: "登录", signout: "退出登录", operator: "运营方",
    playground: "试验场", history: "历史", account: "账户", keys: "密钥", channels: "渠道",
    usage: "用量", jobs: "任务", prompt: "提示词", model: "模型", size: "尺寸", quality: "质量",
    format: "格式", background: "背景", n: "张数", seed: "随机种子（可选）", stream: "显示生成中的预览",
    generate: "生成", edit: "编辑", generating: "生成中…", presets: "预设", mode: "模式",
    mode_generate: "生成", mode_edit: "编辑", images_in: "待编辑的图片", mask: "蒙版",
    brush: "画笔", eraser: "橡皮擦", clear: "清除", brush_size: "笔刷大小",
    mask_help: "涂抹需要修改的区域；涂抹部分在蒙版中为透明。",
    cost: "费用", usage_tokens: "令牌", result: "结果", partial: "预览图",
    balance: "余额", spent: "已消费", limits: "限额", requests: "请求数", none: "无",
    name: "名称", tier: "等级", credit: "额度（美元）", rpm: "每分钟请求", rpd: "每日请求",
    ipm: "每分钟图片", concurrency: "并发", expires: "过期日期", create_key: "创建密钥",
    new_key_once: "新密钥仅显示一次，请立即复制。", copy: "复制", topup: "充值", revoke: "吊销",
    amount: "金额（美元）", status: "状态", prefix: "密钥", created: "创建时间", actions: "操作",
    provider: "服务商", base_url: "接口地址", api_key: "服务商 API 密钥", models: "模型（逗号分隔）",
    priority: "优先级", add_channel: "添加渠道", test: "测试", enable: "启用", disable: "停用",
    health: "健康", breaker: "熔断器", why_disabled: "停用原因", channel_cost: "您的成本",
    test_ok: "渠道响应正常。", test_failed: "测试失败：", enabled: "已启用", disabled: "已停用",
    by_day: "按日", by_key: "按密钥", by_channel: "按渠道", spend: "消费", operator_cost: "运营成本",
    margin: "毛利", images: "图片", failed: "失败", days: "天数", no_data: "暂无用量。",
    jobs_queue: "任务队列", forbidden: "此页面仅限运营方。", confirm_revoke: "确定吊销此密钥？",
    saved: "已保存。", error: "错误", auto: "自动", transparent: "透明", opaque: "不透明",
    custom: "自定义", recipes: "配方", no_history: "还没有图片。", open: "打开", expired: "已过期",
    per_channel_margin: "各渠道毛利（美元）", daily: "每日（美元）", welcome: "已登录：",
  },
};

let lang = navigator.language && navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";

export function setLang(value) { lang = STRINGS[value] ? value : "en"; document.documentElement.lang = lang === "zh" ? "zh-CN" : "en"; }
export function getLang() { return lang; }
export function t(id) { return STRINGS[lang][id] ?? STRINGS.en[id] ?? id; }
